#!/usr/bin/env python3
"""The differential tester: generated Rego programs and inputs, decided by the real OPA engine and
by docket, every disagreement shrunk to a small case and kept.

    python3 tests/differential/run.py DOCKET_DIFFERENTIAL [--cases N] [--seed S] [--record]

DOCKET_DIFFERENTIAL is the `docket-differential` binary (tests/differential.rs: docket's policy
crate, natively, reading cases on stdin). OPA is v1.20's Go library through
`opa-golib-python-bindings` (tests/setup-python.sh installs it).

Each generated program is one module of 4 to 8 rules drawn from the constructs OPA users write:
complete rules with and without defaults, conflicting definitions, partial sets and objects,
functions, `else` chains, `every`, negation (also over rule names whose value is undefined),
comprehensions, `with`, and calls to about forty builtins with well- and ill-typed arguments.
Inputs reach both branches: fields present, missing or of the wrong type. Every rule is queried
with every input; OPA's answer and docket's are compared as the conformance suite compares them
(docs/conformance.md: the same value, both undefined, or both an error).

A disagreement is shrunk while it persists (other rules dropped, body literals dropped, input
fields dropped, arrays shortened) and reported by the constructs its smallest form still uses.
`tests/differential/level.json` holds, for the seed and case count the test command runs, how
many queries agree; the run fails if fewer do. `--record` writes the new level and the shrunk
disagreements to `tests/differential/disagreements.jsonl` (docs/conformance.md lists their
causes). That file is replayed on every run: a case docket now answers as OPA does is reported,
so the list only shrinks.
"""

import argparse
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

HERE = Path(__file__).resolve().parent
LEVEL = HERE / "level.json"
KEPT = HERE / "disagreements.jsonl"

# --- programs ----------------------------------------------------------------------------------


class Rule:
    """One rule of a generated module: its text is `head` + the body `literals` + `tail`."""

    def __init__(self, name, head, literals, tail="", features=(), query=True, needs=()):
        self.name, self.head, self.literals, self.tail = name, head, list(literals), tail
        self.features, self.query, self.needs = set(features), query, set(needs)

    def text(self):
        if not self.literals:
            return self.head + self.tail
        return f"{self.head} if {{\n\t" + "\n\t".join(self.literals) + "\n}" + self.tail


class Gen:
    """Expressions of each type, each with the features it uses."""

    def __init__(self, rng):
        self.r = rng
        self.f = set()

    def pick(self, options):
        return self.r.choice(options)(self) if callable(options[0]) else self.r.choice(options)

    def num(self, depth=0):
        r = self.r
        leaves = ["input.n", "input.m", str(r.randint(-3, 10)), r.choice(["0.5", "2.5", "-1.5", "1e3", "0.1", "0.3", "19.99", "1.1"])]
        if depth > 1 or r.random() < 0.35:
            return r.choice(leaves)
        choice = r.randrange(14)
        if choice < 4:
            op = r.choice(["+", "-", "*", "/", "%"])
            self.f.add(f"arith{op}")
            return f"({self.num(depth + 1)} {op} {self.num(depth + 1)})"
        name, text = [
            ("count", lambda: f"count({self.arr(depth + 1)})"),
            ("sum", lambda: f"sum({self.arr(depth + 1)})"),
            ("max", lambda: f"max({self.arr(depth + 1)})"),
            ("abs", lambda: f"abs({self.num(depth + 1)})"),
            ("round", lambda: f"round({self.num(depth + 1)})"),
            ("to_number", lambda: f"to_number({self.str(depth + 1)})"),
            ("object.get", lambda: f'object.get(input.o, {self.str(depth + 1)}, 0)'),
            ("index", lambda: f"input.xs[{r.randint(0, 3)}]"),
            ("indexof", lambda: f"indexof({self.str(depth + 1)}, {self.str(depth + 1)})"),
            ("count-str", lambda: f"count({self.str(depth + 1)})"),
        ][choice - 4]
        self.f.add(name)
        return text()

    def str(self, depth=0):
        r = self.r
        leaves = ["input.s", "input.t", json.dumps(r.choice(["a", "ab", "x-y", "", "A b", "é", "10", "-"]))]
        if depth > 1 or r.random() < 0.4:
            return r.choice(leaves)
        name, text = r.choice([
            ("upper", lambda: f"upper({self.str(depth + 1)})"),
            ("lower", lambda: f"lower({self.str(depth + 1)})"),
            ("concat", lambda: f'concat("-", {self.arr(depth + 1, strings=True)})'),
            ("trim", lambda: f'trim({self.str(depth + 1)}, " -")'),
            ("sprintf", lambda: f'sprintf("%v/%v", [{self.any(depth + 1)}, {self.any(depth + 1)}])'),
            ("substring", lambda: f"substring({self.str(depth + 1)}, {r.randint(0, 2)}, {r.choice([-1, 1, 2])})"),
            ("replace", lambda: f'replace({self.str(depth + 1)}, "a", "b")'),
            ("format_int", lambda: f"format_int({self.num(depth + 1)}, {r.choice([2, 10, 16])})"),
            ("split-index", lambda: f'split({self.str(depth + 1)}, "-")[{r.randint(0, 1)}]'),
            ("type_name", lambda: f"type_name({self.any(depth + 1)})"),
            ("json.marshal", lambda: f"json.marshal({self.any(depth + 1)})"),
        ])
        self.f.add(name)
        return text()

    def arr(self, depth=0, strings=False):
        r = self.r
        if strings:
            leaves = ["input.ss", '["a", "b"]', f"split({self.str(depth + 1)}, \"-\")"]
        else:
            leaves = ["input.xs", f"[{self.num(depth + 1)}, {self.num(depth + 1)}]", "[]"]
        if depth > 1 or r.random() < 0.5:
            return r.choice(leaves)
        if strings:
            self.f.add("comprehension")
            return f"[upper(x) | some x in {self.arr(depth + 1, strings=True)}]"
        name, text = r.choice([
            ("sort", lambda: f"sort({self.arr(depth + 1)})"),
            ("array.concat", lambda: f"array.concat({self.arr(depth + 1)}, {self.arr(depth + 1)})"),
            ("array.slice", lambda: f"array.slice({self.arr(depth + 1)}, {r.randint(0, 1)}, {r.randint(1, 3)})"),
            ("comprehension", lambda: f"[x | some x in {self.arr(depth + 1)}; x > {self.num(depth + 1)}]"),
        ])
        self.f.add(name)
        return text()

    def any(self, depth=0):
        return self.r.choice([self.num, self.str, self.arr, lambda d: "input.o", lambda d: "input.b"])(depth)

    def cond(self, depth=0):
        r = self.r
        kind = r.randrange(9)
        if kind < 3:
            return f"{self.num(depth)} {r.choice(['<', '<=', '>', '>=', '==', '!='])} {self.num(depth)}"
        if kind == 3:
            return f"{self.str(depth)} {r.choice(['==', '!=', '<'])} {self.str(depth)}"
        if kind == 4:
            name = r.choice(["startswith", "endswith", "contains"])
            self.f.add(name)
            return f"{name}({self.str(depth)}, {self.str(depth)})"
        if kind == 5:
            self.f.add("in")
            return f"{self.num(depth)} in {self.arr(depth)}"
        if kind == 6:
            name = r.choice(["is_number", "is_string", "is_array"])
            self.f.add(name)
            return f"{name}({self.any(depth)})"
        if kind == 7:
            self.f.add("regex.match")
            return f'regex.match({json.dumps(r.choice(["^a", "[0-9]+", "^[a-z-]*$", "b|y"]))}, {self.str(depth)})'
        return r.choice(["input.b", "input.b == false", "true"])


def rules_for(rng, package):
    """4 to 8 rules of a module, with the rules other rules refer to before them."""
    rules = []
    names = iter(f"r{i}" for i in range(100))
    for _ in range(rng.randint(4, 8)):
        g = Gen(rng)
        name = next(names)
        kind = rng.randrange(12)
        if kind <= 2:
            lits = [g.cond() for _ in range(rng.randint(0, 2))]
            value = rng.choice([g.num, g.str, g.arr])()
            tail = ""
            rule = Rule(name, f"{name} := {value}", lits, tail, {"complete"} | g.f)
            if rng.random() < 0.3:
                fallback = rng.choice(["0", "false", '"none"'])
                rules.append(Rule(name + "_d", f"default {name} := {fallback}", [], query=False))
                rule.features.add("default")
                rule.needs.add(name + "_d")
        elif kind == 3:
            value = g.num()
            rule = Rule(name, f"{name} := {value}", [g.cond()], "", {"conflict"} | g.f)
            other = Rule(name + "_2", f"{name} := {g.num()}", [g.cond()], query=False)
            rules.append(other)
            rule.needs.add(name + "_2")
        elif kind == 4:
            rule = Rule(name, f"{name} contains {rng.choice(['x', 'x * 2', 'upper(x)', 'x.name'])}",
                        [f"some x in {rng.choice(['input.xs', 'input.ss', 'input.people'])}", g.cond()],
                        features={"partial-set"} | g.f)
        elif kind == 5:
            rule = Rule(name, f"{name}[k] := v", ["some k, v in input.o", f"v {rng.choice(['>', '<', '!='])} {g.num()}"],
                        features={"partial-object"} | g.f)
        elif kind == 6:
            body = g.num()
            fname = name + "_f"
            func = Rule(fname, f"{fname}(a) := a + {body}", [f"a {rng.choice(['>', '<'])} {g.num()}"], query=False)
            rules.append(func)
            rule = Rule(name, f"{name} := {fname}({g.num()})", [], features={"function"} | g.f, needs={fname})
        elif kind == 7:
            rule = Rule(name, f"{name} := {g.str()}", [g.cond()],
                        f" else := {g.num()} if {{\n\t{g.cond()}\n}} else := \"last\"", {"else"} | g.f)
        elif kind == 8:
            over = rng.choice(["input.xs", "input.ss"])
            test = rng.choice(["x > 0", "x != 3", "is_number(x)", 'x != "a"'])
            rule = Rule(name, name, [f"every x in {over} {{ {test} }}"], features={"every"} | g.f)
        elif kind == 9:
            helper = name + "_w"
            source = rng.choice(["input.s", "input.n", "input.missing", "input.o.k"])
            rules.append(Rule(helper, f"{helper} := {source}", [], query=False))
            test = rng.choice([f'startswith({helper}, "a")', f'{helper} in {{"a", 1}}', f"{helper} == 1", f"{helper}"])
            rule = Rule(name, name, [f"not {test}"], features={"negation-of-rule"}, needs={helper})
        elif kind == 10:
            rule = Rule(name, name, [f"not {g.cond()}"], features={"negation"} | g.f)
        else:
            earlier = [r for r in rules if r.query]
            if earlier:
                target = rng.choice(earlier)
                rule = Rule(name, f"{name} := {target.name} with input.n as {rng.randint(-2, 5)}", [],
                            features={"with"}, needs={target.name})
            else:
                rule = Rule(name, f"{name} := {g.num()}", [], features={"complete"} | g.f)
        rules.append(rule)
    return rules


def module_text(package, rules):
    return f"package {package}\n\nimport rego.v1\n\n" + "\n\n".join(r.text() for r in rules) + "\n"


def random_input(rng):
    """An input with each field present, missing or of another type."""
    def maybe(value, wrong):
        x = rng.random()
        return value if x < 0.8 else wrong if x < 0.9 else None

    fields = {
        "n": maybe(rng.choice([0, 1, 2, 3, -1, 7, 2.5, 10**20, 0.1, 19.99]), "3"),
        "m": maybe(rng.choice([0, 1, 2, 5, -4, 0.5, 0.7, 1.1]), [1]),
        "s": maybe(rng.choice(["a", "ab", "abc", "x-y", "", "A b", "é", "10", "a-b-c"]), 5),
        "t": maybe(rng.choice(["a", "b", "-", "y", "10"]), None),
        "xs": maybe([rng.choice([0, 1, 2, 3, -1, 5]) for _ in range(rng.randint(0, 4))], "12"),
        "ss": maybe([rng.choice(["a", "b", "x-y", ""]) for _ in range(rng.randint(0, 3))], [1, "a"]),
        "o": maybe({k: rng.choice([0, 1, 3, 9, -2]) for k in rng.sample(["a", "b", "k", "x-y"], rng.randint(0, 3))}, ["a"]),
        "b": maybe(rng.choice([True, False]), "true"),
        "people": maybe([{"name": rng.choice(["A", "B"])} if rng.random() < 0.7 else {} for _ in range(rng.randint(0, 3))], None),
    }
    return {k: v for k, v in fields.items() if v is not None}


# --- the two engines ---------------------------------------------------------------------------


# OPA compiles a module when it first prepares a query; these say it refused the module itself
# (parse, safety, type checking), not the evaluation.
REJECTED = ("parse_error", "prepare_error", "rego_parse_error", "rego_unsafe_var_error",
            "rego_type_error", "rego_compile_error", "rego_recursion_error")


def opa_answer(module, path, input_value):
    engine = OpaEngine()
    try:
        engine.add_policy("case.rego", module)
        return {"value": engine.eval_document(path.replace("/", "."), input_value)}
    except OpaUndefinedError:
        return {"undefined": True}
    except OpaError as e:
        text = str(e)
        if any(text.startswith(code) or f": {code}" in text for code in REJECTED):
            return {"error": text, "rejected": True}
        return {"error": text}


class Docket:
    def __init__(self, binary):
        self.p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, cases):
        """Answers for (module, path, input) cases, in order: one case written, its answer read,
        so neither pipe fills while the other side waits on it."""
        answers = []
        for module, path, input_value in cases:
            self.p.stdin.write(json.dumps({"module": module, "path": path, "input": input_value}) + "\n")
            self.p.stdin.flush()
            answers.append(json.loads(self.p.stdout.readline()))
        return answers


def kind(answer):
    return "error" if "error" in answer else "undefined" if "undefined" in answer else "value"


def same(a, b):
    """The conformance suite's agreement: same value (numbers by value), both undefined, both errors."""
    if "error" in a or "error" in b:
        return "error" in a and "error" in b
    if "undefined" in a or "undefined" in b:
        return "undefined" in a and "undefined" in b
    return same_json(a["value"], b["value"])


def same_json(x, y):
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return x == y
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(same_json(a, b) for a, b in zip(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(same_json(x[k], y[k]) for k in x)
    return x == y


# --- shrinking ---------------------------------------------------------------------------------


def shrink(docket, package, rules, target, input_value):
    """The smallest variant of a disagreeing case that still disagrees."""
    path = f"{package}/{target}"

    def disagrees(rs, inp):
        module = module_text(package, rs)
        opa = opa_answer(module, path, inp)
        if opa.get("rejected"):
            return None  # not a program OPA accepts: no longer the same question
        ours = docket.ask([(module, path, inp)])[0]
        return (opa, ours) if not same(opa, ours) else None

    best = disagrees(rules, input_value)
    progress = True
    while progress:
        progress = False
        for i in range(len(rules)):
            if rules[i].name == target:
                continue
            candidate = rules[:i] + rules[i + 1:]
            found = disagrees(candidate, input_value)
            if found:
                rules, best, progress = candidate, found, True
                break
        for i, rule in enumerate(rules):
            for j in range(len(rule.literals)):
                smaller = Rule(rule.name, rule.head, rule.literals[:j] + rule.literals[j + 1:], rule.tail,
                               rule.features, rule.query, rule.needs)
                candidate = rules[:i] + [smaller] + rules[i + 1:]
                found = disagrees(candidate, input_value)
                if found:
                    rules, best, progress = candidate, found, True
                    break
        for key in list(input_value):
            candidate = {k: v for k, v in input_value.items() if k != key}
            found = disagrees(rules, candidate)
            if found:
                input_value, best, progress = candidate, found, True
                break
            if isinstance(input_value[key], list) and input_value[key]:
                candidate = dict(input_value, **{key: input_value[key][:-1]})
                found = disagrees(rules, candidate)
                if found:
                    input_value, best, progress = candidate, found, True
                    break
    features = sorted(set().union(*(r.features for r in rules if r.name == target)))
    return {"module": module_text(package, rules), "path": path, "input": input_value,
            "opa": best[0], "docket": best[1], "features": features}


# --- the run -----------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("docket_differential")
    parser.add_argument("--cases", type=int, default=1500, help="programs to generate")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--record", action="store_true", help="write level.json and disagreements.jsonl")
    args = parser.parse_args()
    docket = Docket(args.docket_differential)

    # The disagreements kept from earlier runs: still disagreeing, or now fixed.
    kept = [json.loads(line) for line in KEPT.read_text().splitlines() if line.strip()] if KEPT.exists() else []
    fixed = []
    for case in kept:
        ours = docket.ask([(case["module"], case["path"], case["input"])])[0]
        if same(case["opa"], ours):
            fixed.append(case)

    rng = random.Random(args.seed)
    queries = agreeing = rejected = 0
    disagreements = []
    kinds = Counter()
    for n in range(args.cases):
        package = f"g{n}"
        rules = rules_for(rng, package)
        module = module_text(package, rules)
        inputs = [random_input(rng) for _ in range(4)]
        asks = [(module, f"{package}/{r.name}", inp) for r in rules if r.query for inp in inputs]
        opa = [opa_answer(*a) for a in asks]
        if any(o.get("rejected") for o in opa):
            # A module OPA refuses to compile (its type checker, safety) is not a policy anyone
            # deploys; whether docket refuses it too is `docket check`'s question, not this one.
            rejected += 1
            continue
        ours = docket.ask(asks)
        for (m, path, inp), o, d in zip(asks, opa, ours):
            queries += 1
            if same(o, d):
                agreeing += 1
            else:
                disagreements.append((package, rules, path.split("/")[1], inp))
                kinds[(kind(o), kind(d))] += 1

    shrunk = {}
    for package, rules, target, inp in disagreements[:200]:
        case = shrink(docket, package, rules, target, inp)
        # One kept case per smallest program text (the package name aside).
        key = case["module"].split("\n", 1)[1] + json.dumps(case["input"], sort_keys=True)
        shrunk.setdefault(key, case)
    by_feature = Counter(f for c in shrunk.values() for f in c["features"])

    rate = 100.0 * agreeing / max(queries, 1)
    print(f"differential: {args.cases} generated programs, {queries} queries: docket agrees with OPA v1.20 "
          f"on {agreeing} ({rate:.2f}%), {queries - agreeing} disagree; {len(shrunk)} distinct after shrinking; "
          f"{rejected} programs OPA refused to compile were skipped")
    print("  by answers (OPA -> docket): " + ", ".join(f"{a} -> {b}: {n}" for (a, b), n in kinds.most_common()))
    print("  constructs in the shrunk cases: " + ", ".join(f"{f} {n}" for f, n in by_feature.most_common(15)))
    for case in list(shrunk.values())[:12]:
        print("---- shrunk disagreement:", case["path"], "input", json.dumps(case["input"]))
        print(case["module"].rstrip())
        print("  OPA:   ", json.dumps(case["opa"])[:200])
        print("  docket:", json.dumps(case["docket"])[:200])
    if fixed:
        print(f"{len(fixed)} kept disagreements now agree with OPA: re-record (--record) to drop them")

    level = json.loads(LEVEL.read_text()) if LEVEL.exists() else None
    if args.record:
        LEVEL.write_text(json.dumps({"seed": args.seed, "cases": args.cases, "queries": queries,
                                     "agreeing": agreeing}, indent=2) + "\n")
        still = [c for c in kept if c not in fixed]
        known = {c["module"].split("\n", 1)[1] + json.dumps(c["input"], sort_keys=True) for c in still}
        new = [c for k, c in shrunk.items() if k not in known]
        KEPT.write_text("".join(json.dumps(c, sort_keys=True) + "\n" for c in still + new))
        print(f"recorded: level {agreeing}/{queries}; {len(still) + len(new)} disagreements kept")
        return 0
    if level and (level["seed"], level["cases"]) == (args.seed, args.cases):
        if agreeing < level["agreeing"]:
            print(f"FAILED: {agreeing} agreeing queries, fewer than the recorded {level['agreeing']}")
            return 1
        if agreeing > level["agreeing"]:
            print(f"better than the recorded {level['agreeing']}: re-record with --record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
