// interop reads a docket log the way any C2SP client would, with the reference Go
// implementation of signed notes and tiled transparency logs (golang.org/x/mod/sumdb/note and
// tlog, from Debian's golang-golang-x-mod-dev), and nothing of docket's:
//
//   - the key in force from <base>/v1/log/public-key opens <base>/checkpoint (note.Open);
//   - the checkpoint body is a C2SP tlog-checkpoint: origin, size, base64 root;
//   - every entry is read from the entry bundles (<base>/tile/entries/...), hashed as an RFC 6962
//     leaf, and proved included with hash tiles (<base>/tile/<L>/...) checked against the root;
//   - given an older checkpoint (and the keys that may have signed it), the new tree is proved
//     consistent with it.
//
// Entries in a bundle that start with "docket/pruned/v1" are pruned under retention: their
// bodies are gone (docs/log-format.md §3.5); they are counted and every other entry is proved.
// A body that starts with "docket/digest/v1" holds its record's length and SHA-256 in place of a
// record too long for a bundle (§3.6): once the body is proved, the record is fetched from
// <base>/v1/log/entries/<seq>/record and checked against both.
//
// Usage: interop <base-url> [<old-checkpoint-file> <vkey>...]
// Prints one JSON object; exits 1 with a message on any failure.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const width = 256

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "interop: "+format+"\n", args...)
	os.Exit(1)
}

func get(url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	if resp.StatusCode != 200 {
		fail("GET %s: %s: %s", url, resp.Status, body)
	}
	return body
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func open(text []byte, verifiers note.Verifiers) checkpoint {
	n, err := note.Open(text, verifiers)
	if err != nil {
		fail("opening the checkpoint: %v\n%s", err, text)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		fail("the checkpoint has fewer than three lines: %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("the checkpoint size %q is not a decimal", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("the checkpoint root %q is not a base64 SHA-256", lines[2])
	}
	var root tlog.Hash
	copy(root[:], raw)
	return checkpoint{origin: lines[0], size: size, root: root}
}

// tiles fetches C2SP tiles: Go's sumdb paths are tile/<H>/<L>/<N>, C2SP's tile/<L>/<N>.
type tiles struct{ base string }

func (t tiles) Height() int { return 8 }

func (t tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, tile := range ts {
		out[i] = get(t.base + "/tile/" + strings.TrimPrefix(tile.Path(), "tile/8/"))
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func bundle(base string, index, count int64) [][]byte {
	path := tlog.Tile{H: 8, L: 0, N: index, W: int(count)}.Path()
	body := get(base + "/tile/entries/" + strings.TrimPrefix(path, "tile/8/0/"))
	var entries [][]byte
	for len(body) > 0 {
		if len(body) < 2 {
			fail("entry bundle %d: a truncated length", index)
		}
		n := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+n {
			fail("entry bundle %d: an entry runs past the end", index)
		}
		entries = append(entries, body[2:2+n])
		body = body[2+n:]
	}
	if int64(len(entries)) != count {
		fail("entry bundle %d holds %d entries, not %d", index, len(entries), count)
	}
	return entries
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: interop <base-url> [<old-checkpoint-file> <vkey>...]")
	}
	base := strings.TrimSuffix(os.Args[1], "/")
	vkey := strings.TrimSpace(string(get(base + "/v1/log/public-key")))
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("the served key %q: %v", vkey, err)
	}
	cp := open(get(base+"/checkpoint"), note.VerifierList(verifier))
	reader := tlog.TileHashReader(tlog.Tree{N: cp.size, Hash: cp.root}, tiles{base})

	proved, pruned, digests := 0, 0, 0
	for first := int64(0); first < cp.size; first += width {
		count := cp.size - first
		if count > width {
			count = width
		}
		for j, data := range bundle(base, first/width, count) {
			seq := first + int64(j)
			if strings.HasPrefix(string(data), "docket/pruned/v1") {
				pruned++
				continue
			}
			proof, err := tlog.ProveRecord(cp.size, seq, reader)
			if err != nil {
				fail("entry %d: proving inclusion: %v", seq, err)
			}
			if err := tlog.CheckRecord(proof, cp.size, cp.root, seq, tlog.RecordHash(data)); err != nil {
				fail("entry %d is not included in the checkpoint: %v", seq, err)
			}
			proved++
			if strings.HasPrefix(string(data), "docket/digest/v1") {
				if len(data) != 73+sha256.Size {
					fail("entry %d: a digest-form body of %d bytes, not 105", seq, len(data))
				}
				record := get(fmt.Sprintf("%s/v1/log/entries/%d/record", base, seq))
				sum := sha256.Sum256(record)
				if uint32(len(record)) != binary.BigEndian.Uint32(data[69:73]) || !bytes.Equal(sum[:], data[73:]) {
					fail("entry %d: the record served is not the one its body commits to", seq)
				}
				digests++
			}
		}
	}

	result := map[string]interface{}{
		"origin": cp.origin, "size": cp.size, "proved": proved, "pruned": pruned, "digests": digests,
		"key": vkey,
	}
	if len(os.Args) > 3 {
		var verifiers []note.Verifier
		for _, k := range os.Args[3:] {
			v, err := note.NewVerifier(k)
			if err != nil {
				fail("the key %q: %v", k, err)
			}
			verifiers = append(verifiers, v)
		}
		text, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail("%v", err)
		}
		old := open(text, note.VerifierList(verifiers...))
		if old.origin != cp.origin {
			fail("the old checkpoint's origin %q is not %q", old.origin, cp.origin)
		}
		proof, err := tlog.ProveTree(cp.size, old.size, reader)
		if err != nil {
			fail("proving consistency from %d: %v", old.size, err)
		}
		if err := tlog.CheckTree(proof, cp.size, cp.root, old.size, old.root); err != nil {
			fail("the log of %d entries is not an extension of the old one of %d: %v", cp.size, old.size, err)
		}
		result["consistent_from"] = old.size
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}
