//! [`AsyncDocket`]: a [`Docket`] on its own thread, for async services.

use crate::{Docket, Error, InclusionProof, PolicyVersion, Receipt};
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};

/// At most this many decisions per group commit.
const MAX_BATCH: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

enum Job {
    Decide {
        path: String,
        input: String,
        reply: Reply<Receipt>,
    },
    LoadPolicies {
        paths: Vec<PathBuf>,
        reply: Reply<PolicyVersion>,
    },
    AddPolicy {
        id: String,
        source: String,
        reply: Reply<PolicyVersion>,
    },
    SetPolicies {
        modules: Vec<(String, String)>,
        data: String,
        reply: Reply<PolicyVersion>,
    },
    PutData {
        path: String,
        json: String,
        reply: Reply<PolicyVersion>,
    },
    Prove {
        decision_id: String,
        reply: Reply<InclusionProof>,
    },
    Size {
        reply: oneshot::Sender<u64>,
    },
}

/// A [`Docket`] owned by a thread of its own, driven from async code. Cheap to clone; every
/// clone reaches the same log. Decisions waiting when the thread is free are sealed and made
/// durable together, one fsync and one signed checkpoint for all of them (a group commit), and
/// each caller gets its own receipt or error.
///
/// ```
/// use docket_embed::{AsyncDocket, Docket, GenerateKey, SecretKey};
/// # let dir = docket_embed::doc_scratch();
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let docket = Docket::open(&dir, SecretKey::generate("example.com/audit")?)?;
/// let docket = AsyncDocket::new(docket);
/// docket.add_policy("authz.rego", "package authz\nimport rego.v1\nallow if input.user == \"alice\"\n").await?;
/// let (a, b) = tokio::join!(
///     docket.decide("authz/allow", r#"{"user":"alice"}"#),
///     docket.decide("authz/allow", r#"{"user":"bob"}"#),
/// );
/// assert_eq!(a?.result.as_deref(), Some("true"));
/// assert_eq!(b?.result, None);
/// # Ok::<(), docket_embed::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct AsyncDocket {
    jobs: mpsc::Sender<Job>,
}

impl AsyncDocket {
    /// Moves `docket` to a thread of its own. The thread ends when the last clone is dropped,
    /// after answering every job already sent.
    pub fn new(docket: Docket) -> AsyncDocket {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("docket-embed".into())
            .spawn(move || run(docket, queue))
            .expect("spawning the docket thread");
        AsyncDocket { jobs }
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .await
            .map_err(|_| Error::Log("the docket thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Log("the docket thread stopped before answering".into()))?
    }

    /// [`Docket::decide`]: returns once the decision is durable.
    pub async fn decide(&self, path: &str, input: &str) -> Result<Receipt, Error> {
        let (path, input) = (path.to_string(), input.to_string());
        self.ask(|reply| Job::Decide { path, input, reply }).await
    }

    /// [`Docket::load_policies`].
    pub async fn load_policies(&self, paths: Vec<PathBuf>) -> Result<PolicyVersion, Error> {
        self.ask(|reply| Job::LoadPolicies { paths, reply }).await
    }

    /// [`Docket::add_policy`].
    pub async fn add_policy(&self, id: &str, source: &str) -> Result<PolicyVersion, Error> {
        let (id, source) = (id.to_string(), source.to_string());
        self.ask(|reply| Job::AddPolicy { id, source, reply }).await
    }

    /// [`Docket::set_policies`].
    pub async fn set_policies(
        &self,
        modules: &[(&str, &str)],
        data: &str,
    ) -> Result<PolicyVersion, Error> {
        let modules = modules
            .iter()
            .map(|(id, source)| (id.to_string(), source.to_string()))
            .collect();
        let data = data.to_string();
        self.ask(|reply| Job::SetPolicies {
            modules,
            data,
            reply,
        })
        .await
    }

    /// [`Docket::put_data`].
    pub async fn put_data(&self, path: &str, json: &str) -> Result<PolicyVersion, Error> {
        let (path, json) = (path.to_string(), json.to_string());
        self.ask(|reply| Job::PutData { path, json, reply }).await
    }

    /// [`Docket::prove`].
    pub async fn prove(&self, decision_id: &str) -> Result<InclusionProof, Error> {
        let decision_id = decision_id.to_string();
        self.ask(|reply| Job::Prove { decision_id, reply }).await
    }

    /// [`Docket::size`].
    pub async fn size(&self) -> Result<u64, Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Size { reply })
            .await
            .map_err(|_| Error::Log("the docket thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Log("the docket thread stopped before answering".into()))
    }
}

/// The docket thread: each decision job, with every other one already waiting, is one group
/// commit; other jobs run one at a time, in order.
fn run(mut docket: Docket, mut queue: mpsc::Receiver<Job>) {
    let mut held = None;
    loop {
        let Some(job) = held.take().or_else(|| queue.blocking_recv()) else {
            return;
        };
        match job {
            Job::Decide { path, input, reply } => {
                let mut batch = vec![(path, input, reply)];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(Job::Decide { path, input, reply }) => batch.push((path, input, reply)),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let requests: Vec<(&str, &str)> = batch
                    .iter()
                    .map(|(p, i, _)| (p.as_str(), i.as_str()))
                    .collect();
                match docket.decide_each(&requests) {
                    Ok(outcomes) => {
                        for ((_, _, reply), outcome) in batch.into_iter().zip(outcomes) {
                            let _ = reply.send(outcome);
                        }
                    }
                    Err(e) => {
                        for (_, _, reply) in batch {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
            Job::LoadPolicies { paths, reply } => {
                let _ = reply.send(docket.load_policies(&paths));
            }
            Job::AddPolicy { id, source, reply } => {
                let _ = reply.send(docket.add_policy(&id, &source));
            }
            Job::SetPolicies {
                modules,
                data,
                reply,
            } => {
                let modules: Vec<(&str, &str)> = modules
                    .iter()
                    .map(|(id, source)| (id.as_str(), source.as_str()))
                    .collect();
                let _ = reply.send(docket.set_policies(&modules, &data));
            }
            Job::PutData { path, json, reply } => {
                let _ = reply.send(docket.put_data(&path, &json));
            }
            Job::Prove { decision_id, reply } => {
                let _ = reply.send(docket.prove(&decision_id));
            }
            Job::Size { reply } => {
                let _ = reply.send(docket.size());
            }
        }
    }
}
