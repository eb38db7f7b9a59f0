package serve

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bt-org/bt/internal/rundir"
)

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func row(step int, loss float64, extra string) string {
	return fmt.Sprintf(`{"step":%d,"loss":%g,"lr_weights":0.1%s}`+"\n", step, loss, extra)
}

// newServer serves root with a cache outside it.
func newServer(t *testing.T, root string, o Options) *httptest.Server {
	t.Helper()
	o.Root = root
	if o.CacheDir == "" {
		o.CacheDir = t.TempDir()
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts
}

func get(t *testing.T, url string, v any) int {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v in %q", url, err, b)
		}
	}
	return r.StatusCode
}

func steps(m Metrics) []int {
	var s []int
	for _, r := range m.Rows {
		s = append(s, int(r["step"].(float64)))
	}
	return s
}

// TestMetricsIncremental: metrics are read from an offset in complete
// lines only, so a row half written is left for the next read; damaged
// lines are counted and skipped; fields bt does not know yet pass through;
// a file a resumed run truncated and wrote again is read from the start.
func TestMetricsIncremental(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "run", "metrics.jsonl")
	write(t, file, row(1, 40, "")+row(2, 35, `,"warning":"mean C_ii fell below 0.1"`)+"\n"+`{"step":3,"loss":3`)
	ts := newServer(t, root, Options{})
	url := func(off int64) string { return fmt.Sprintf("%s/api/metrics?id=run&offset=%d", ts.URL, off) }

	var m Metrics
	if code := get(t, url(0), &m); code != 200 {
		t.Fatalf("status %d", code)
	}
	if fmt.Sprint(steps(m)) != "[1 2]" || m.Reset || m.Broken != 0 {
		t.Fatalf("first read: steps %v, reset %v, skipped %d; want [1 2], no reset, none skipped (a blank line is no damage)", steps(m), m.Reset, m.Broken)
	}
	if m.Rows[1]["warning"] != "mean C_ii fell below 0.1" {
		t.Errorf("the unknown field warning did not pass through: %v", m.Rows[1])
	}
	if want := int64(len(row(1, 40, "") + row(2, 35, `,"warning":"mean C_ii fell below 0.1"`) + "\n")); m.Next != want {
		t.Fatalf("next %d, want %d: the end of the last complete line", m.Next, want)
	}

	appendFile(t, file, "2}\nnot json\n"+row(4, 30, ""))
	next := m.Next
	if get(t, url(next), &m); fmt.Sprint(steps(m)) != "[3 4]" || m.Broken != 1 || m.Reset {
		t.Fatalf("after the row was finished: steps %v, skipped %d, reset %v; want [3 4], 1, false", steps(m), m.Broken, m.Reset)
	}
	if m.Rows[0]["loss"] != 32.0 {
		t.Errorf("the row written in two pieces reads loss %v, want 32", m.Rows[0]["loss"])
	}
	if get(t, url(m.Next), &m); len(m.Rows) != 0 || m.Next != m.Size {
		t.Fatalf("at the end: %d rows, next %d of %d", len(m.Rows), m.Next, m.Size)
	}
	end := m.Next

	// Resumed from step 1's checkpoint: the file is cut to step 1 and
	// steps 2… logged again, shorter than before and then longer.
	for _, c := range []struct {
		name, content string
	}{
		{"shorter", row(1, 40, "") + row(2, 33, "")},
		{"longer, no line end at the old offset", row(1, 40, "") + row(2, 33, `,"knn20":0.5,"knn200":0.4`) + row(3, 31, `,"knn20":0.5,"knn200":0.4`) + row(4, 29, `,"knn20":0.5,"knn200":0.4`)},
	} {
		write(t, file, c.content)
		get(t, url(end), &m)
		if !m.Reset || steps(m)[0] != 1 || m.Next != int64(len(c.content)) {
			t.Errorf("%s: reset %v, steps %v, next %d; want the whole file again", c.name, m.Reset, steps(m), m.Next)
		}
	}

	for _, bad := range []string{"-1", "x"} {
		if code := get(t, fmt.Sprintf("%s/api/metrics?id=run&offset=%s", ts.URL, bad), nil); code != http.StatusBadRequest {
			t.Errorf("offset %s: status %d, want 400", bad, code)
		}
	}
	var none Metrics
	os.MkdirAll(filepath.Join(root, "fresh"), 0o755)
	write(t, filepath.Join(root, "fresh", "config.json"), "{}")
	if code := get(t, ts.URL+"/api/metrics?id=fresh", &none); code != 200 || len(none.Rows) != 0 {
		t.Errorf("a run without metrics yet: status %d, %d rows; want 200 and none", code, len(none.Rows))
	}
}

// TestLongLine: a line longer than one answer is skipped, not waited for.
func TestLongLine(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "metrics.jsonl")
	write(t, file, `{"step":1,"note":"`+strings.Repeat("x", maxMetricsChunk)+`"}`+"\n"+row(2, 1, ""))
	ts := newServer(t, root, Options{})
	var m Metrics
	get(t, ts.URL+"/api/metrics?id=.", &m)
	if len(m.Rows) != 0 || m.Broken != 1 || !m.More {
		t.Fatalf("first answer: %d rows, %d skipped, more %v; want the long line skipped", len(m.Rows), m.Broken, m.More)
	}
	get(t, fmt.Sprintf("%s/api/metrics?id=.&offset=%d", ts.URL, m.Next), &m)
	if fmt.Sprint(steps(m)) != "[2]" {
		t.Fatalf("after the long line: steps %v, want [2]", steps(m))
	}
}

// TestStates: a run's state comes from what its directory holds.
func TestStates(t *testing.T) {
	root := t.TempDir()
	cfg := func(steps int) string { return fmt.Sprintf(`{"model":{"arch":"tiny"},"batch":16,"steps":%d}`, steps) }
	old := time.Now().Add(-time.Hour)
	for _, c := range []struct {
		id    string
		files map[string]string
		want  State
		kind  Kind
	}{
		{"done", map[string]string{"config.json": cfg(2), "metrics.jsonl": row(1, 3, "") + row(2, 2, "")}, Finished, Pretrain},
		{"cut", map[string]string{"config.json": cfg(5), "metrics.jsonl": row(1, 3, "") + row(2, 2, "")}, Stopped, Pretrain},
		{"epochs", map[string]string{"config.json": cfg(0), "metrics.jsonl": row(1, 3, ""), "c_end.png": "png"}, Finished, Pretrain},
		{"demo", map[string]string{"config.json": cfg(0), "metrics.jsonl": row(1, 3, ""), "results.md": "table"}, Finished, Demo},
		{"grid/nan", map[string]string{"result.json": `{"variant":"lr 100","diverged":"train: the loss is NaN at step 3 (non-finite values)"}`, "metrics.jsonl": row(1, 3, "")}, Diverged, Variant},
		{"grid/ok", map[string]string{"result.json": `{"variant":"lr 1","steps":2}`, "config.json": cfg(2), "metrics.jsonl": row(1, 3, "") + row(2, 2, "")}, Finished, Variant},
		{"errored", map[string]string{"config.json": cfg(9), "metrics.jsonl": row(1, 3, `,"error":"train: the loss is NaN at step 2 (non-finite values)"`)}, Diverged, Pretrain},
	} {
		for name, content := range c.files {
			write(t, filepath.Join(root, c.id, name), content)
		}
		// c_end.png is written after the last metrics row.
		if _, ok := c.files["c_end.png"]; ok {
			os.Chtimes(filepath.Join(root, c.id, "metrics.jsonl"), old, old)
		}
	}
	// A resumed run that went on after an earlier c_end.png and stopped.
	write(t, filepath.Join(root, "resumed", "c_end.png"), "png")
	os.Chtimes(filepath.Join(root, "resumed", "c_end.png"), old, old)
	write(t, filepath.Join(root, "resumed", "metrics.jsonl"), row(1, 3, "")+row(2, 2, ""))
	write(t, filepath.Join(root, "grid", "ablation.md"), "table")
	// A run in progress: this process holds its lock.
	live, err := rundir.Open(filepath.Join(root, "live"), rundir.New)
	if err != nil {
		t.Fatal(err)
	}
	live.Start()
	write(t, filepath.Join(root, "live", "metrics.jsonl"), row(1, 3, ""))
	// The same, let go: its lock file stays behind.
	write(t, filepath.Join(root, "gone", "metrics.jsonl"), row(1, 3, ""))
	gone, err := rundir.Open(filepath.Join(root, "gone"), rundir.Resume)
	if err != nil {
		t.Fatal(err)
	}
	gone.Start()
	gone.Close()
	defer live.Close()
	want := map[string]State{"done": Finished, "cut": Stopped, "epochs": Finished, "demo": Finished, "grid/nan": Diverged, "grid/ok": Finished,
		"errored": Diverged, "resumed": Stopped, "live": Running, "gone": Stopped}

	ts := newServer(t, root, Options{})
	var list struct{ Runs []Run }
	if code := get(t, ts.URL+"/api/runs", &list); code != 200 {
		t.Fatalf("status %d", code)
	}
	got := map[string]Run{}
	for _, r := range list.Runs {
		got[r.ID] = r
	}
	if len(got) != len(want) {
		t.Errorf("listed %d runs, want %d: %v", len(got), len(want), list.Runs)
	}
	for id, s := range want {
		if got[id].State != s {
			t.Errorf("%s: %s (%s), want %s", id, got[id].State, got[id].Reason, s)
		}
	}
	for id, k := range map[string]Kind{"demo": Demo, "grid/nan": Variant, "grid/ok": Variant, "done": Pretrain} {
		if got[id].Kind != k {
			t.Errorf("%s: kind %s, want %s", id, got[id].Kind, k)
		}
	}
	if got["grid/ok"].Grid != "grid" || got["done"].Steps != 2 || got["done"].Total != 2 {
		t.Errorf("grid %q, steps %d of %d", got["grid/ok"].Grid, got["done"].Steps, got["done"].Total)
	}
	if !strings.Contains(got["live"].Holder, fmt.Sprintf("pid %d", os.Getpid())) || got["live"].Start.IsZero() {
		t.Errorf("live: holder %q, start %v", got["live"].Holder, got["live"].Start)
	}
}

// snapshot is every file under root with its size and time.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := os.Lstat(p)
		fmt.Fprintf(&b, "%s %d %v %v\n", p, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
		return nil
	})
	return b.String()
}

// TestRefusals: only regular files under the runs directory, no larger
// than the limit, are served; a path out of it (.., an absolute path, a
// symlink) is refused, as are requests for another host name, writes and
// posts that are not JSON; and nothing under the directory changes.
func TestRefusals(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "runs")
	write(t, filepath.Join(base, "secret.txt"), "outside")
	write(t, filepath.Join(root, "a", "metrics.jsonl"), row(1, 2, ""))
	write(t, filepath.Join(root, "a", "c_end.png"), "\x89PNG small")
	write(t, filepath.Join(root, "a", "big.png"), strings.Repeat("x", 2048))
	write(t, filepath.Join(root, "a", "page.html"), "<script>alert(1)</script>")
	write(t, filepath.Join(root, "a", "inside.png"), "png")
	os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(root, "a", "out.png"))
	os.Symlink(base, filepath.Join(root, "a", "up"))
	os.Symlink("inside.png", filepath.Join(root, "a", "link.png"))
	os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(root, "a", "metrics2"))
	before := snapshot(t, base)
	ts := newServer(t, root, Options{MaxFileBytes: 1024})

	for _, c := range []struct {
		method, path, host, ctype string
		want                      int
	}{
		{"GET", "/files/a/c_end.png", "", "", 200},
		{"GET", "/files/a/link.png", "", "", 200}, // a symlink that stays inside
		{"GET", "/files/a/big.png", "", "", http.StatusRequestEntityTooLarge},
		{"GET", "/files/a/out.png", "", "", http.StatusForbidden},
		{"GET", "/files/a/up/secret.txt", "", "", http.StatusForbidden},
		{"GET", "/files/a/%2e%2e/%2e%2e/secret.txt", "", "", http.StatusForbidden},
		{"GET", "/files/a/..%2f..%2fsecret.txt", "", "", http.StatusForbidden},
		{"GET", "/files/%2fetc%2fpasswd", "", "", http.StatusForbidden},
		{"GET", "/files/a", "", "", http.StatusForbidden},
		{"GET", "/files/a/none.png", "", "", http.StatusNotFound},
		{"GET", "/api/run?id=..", "", "", http.StatusForbidden},
		{"GET", "/api/run?id=a/../..", "", "", http.StatusForbidden},
		{"GET", "/api/run?id=/etc", "", "", http.StatusForbidden},
		{"GET", "/api/metrics?id=a/up", "", "", http.StatusForbidden},
		{"GET", "/api/runs", "evil.example:80", "", http.StatusForbidden},
		{"GET", "/api/runs", "localhost:80", "", 200},
		{"GET", "/api/runs", "[::1]:80", "", 200},
		{"PUT", "/files/a/c_end.png", "", "", http.StatusMethodNotAllowed},
		{"DELETE", "/api/runs", "", "", http.StatusMethodNotAllowed},
		{"POST", "/api/embed", "", "text/plain", http.StatusUnsupportedMediaType},
		{"POST", "/api/embed", "", "application/json", http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(c.method, ts.URL+c.path, strings.NewReader(`{"run":"a","checkpoint":"x","source":"run","n":3`))
		if c.host != "" {
			req.Host = c.host
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != c.want {
			t.Errorf("%s %s (host %q): %d %q, want %d", c.method, c.path, c.host, r.StatusCode, b, c.want)
		}
		if strings.Contains(string(b), "outside") {
			t.Errorf("%s %s served the file outside the runs directory", c.method, c.path)
		}
	}
	r, err := http.Get(ts.URL + "/files/a/page.html")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("an HTML file from a run is served as %q, want text/plain, not sniffed", ct)
	}
	if after := snapshot(t, base); after != before {
		t.Errorf("the runs directory changed:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// TestEmbedRefusals: an embedding names a checkpoint the run has, a
// source there is, and a sample size in range.
func TestEmbedRefusals(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "a", "checkpoint.safetensors"), "not read")
	ts := newServer(t, root, Options{})
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"run":"a","checkpoint":"../../x.safetensors","source":"run","n":10}`, http.StatusNotFound},
		{`{"run":"a","checkpoint":"metrics.jsonl","source":"run","n":10}`, http.StatusNotFound},
		{`{"run":"..","checkpoint":"checkpoint.safetensors","source":"run","n":10}`, http.StatusForbidden},
		{`{"run":"a","checkpoint":"checkpoint.safetensors","source":"images","n":10}`, http.StatusBadRequest},
		{`{"run":"a","checkpoint":"checkpoint.safetensors","source":"/etc","n":10}`, http.StatusBadRequest},
		{`{"run":"a","checkpoint":"checkpoint.safetensors","source":"run","n":1}`, http.StatusBadRequest},
		{`{"run":"a","checkpoint":"checkpoint.safetensors","source":"run","n":5001}`, http.StatusBadRequest},
	} {
		r, err := http.Post(ts.URL+"/api/embed", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != c.want {
			t.Errorf("%s: %d %q, want %d", c.body, r.StatusCode, b, c.want)
		}
	}
	for _, q := range []string{"/api/embed?key=nope", "/api/embed/map?key=nope", "/api/embed/neighbours?key=nope&i=0", "/api/embed/image?key=nope&i=0"} {
		if code := get(t, ts.URL+q, nil); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", q, code)
		}
	}
}

// TestCheckAddr: loopback addresses are taken, others only when allowed.
func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:8080", false, true},
		{"localhost:0", false, true},
		{"[::1]:8080", false, true},
		{"127.0.0.2:8080", false, true},
		{":8080", false, false},
		{"0.0.0.0:8080", false, false},
		{"[::]:8080", false, false},
		{"192.168.1.5:8080", false, false},
		{"example.com:80", false, false},
		{"0.0.0.0:8080", true, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1:http", false, false},
		{"127.0.0.1:99999", false, false},
	} {
		if err := CheckAddr(c.addr, c.remote); (err == nil) != c.ok {
			t.Errorf("CheckAddr(%q, %v) = %v, want ok %v", c.addr, c.remote, err, c.ok)
		}
	}
}

// TestNeighbours: a duplicate is the nearest image at distance 0, the
// others follow by cosine distance, and the PCA map spreads the sample
// along its widest direction.
func TestNeighbours(t *testing.T) {
	vecs := [][]float32{{1, 0, 0}, {0, 1, 0}, {1, 0.1, 0}, {0, 0, 1}, {1, 0, 0}}
	emb := &Embedding{Dim: 3, Index: []int{0, 1, 2, 3, 4}, Names: []string{"a", "b", "c", "d", "a-copy"}, Labels: []int{-1, -1, -1, -1, -1}}
	for _, v := range vecs {
		emb.Z = append(emb.Z, unit(v)...)
	}
	nn := Neighbours(emb, 0, 3)
	if len(nn) != 3 || nn[0].Name != "a-copy" || nn[0].Distance > 1e-7 || nn[1].Name != "c" {
		t.Fatalf("neighbours of a: %+v, want a-copy at 0, then c", nn)
	}
	want := 1 - 1/math.Sqrt(1.01)
	if math.Abs(nn[1].Distance-want) > 1e-6 || math.Abs(nn[2].Distance-1) > 1e-6 {
		t.Errorf("distances %v, %v; want %v, 1", nn[1].Distance, nn[2].Distance, want)
	}
	xy, share := pca(emb)
	if len(xy) != 5 || share[0] < share[1] || share[0] <= 0 || share[0]+share[1] > 1+1e-9 {
		t.Errorf("PCA: %v, shares %v", xy, share)
	}
	if math.Abs(xy[0][0]-xy[4][0]) > 1e-9 || math.Abs(xy[0][1]-xy[4][1]) > 1e-9 {
		t.Errorf("a and its copy land apart on the map: %v, %v", xy[0], xy[4])
	}
}
