package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

// The hostile-client test: what an attacker or a careless client sends, on
// both stores, through the server the binary runs (its HTTP timeouts and
// limits included). Every case must leave the server healthy, answer 4xx
// with an OperationOutcome (or close the connection, for clients too slow to
// be answered), never log a 500, and keep the process's heap under
// hostileHeapCeiling.

// hostileHeapCeiling is the most heap the whole test process (server and
// clients) may have in use at any moment of the test.
const hostileHeapCeiling = 512 << 20

func TestHostileClients(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { runHostile(t, nil) })
	t.Run("mongo", func(t *testing.T) {
		srv := mongotest.Start(t)
		// FerretDB scans its whole table for every query (and the audit
		// trail grows it with every request): an include fan-out of ten
		// queries takes about 3 s there, and over 10 s on a loaded
		// machine, so the write timeout is longer (the later flag wins).
		// Speed on FerretDB says nothing about MongoDB; what this proves
		// is the answer, not its time.
		runHostile(t, []string{"--mongo-uri", srv.URI(), "--mongo-db", srv.Database(t), "--write-timeout", "30s"})
	})
}

// syncBuffer is a log sink safe for the server's concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hostile is a running server under attack.
type hostile struct {
	t    *testing.T
	m    *Main
	base string // FHIR base
	addr string // host:port
	logs *syncBuffer
}

func startHostile(t *testing.T, storeArgs []string, extra ...string) *hostile {
	t.Helper()
	logs := &syncBuffer{}
	m := NewMain(logs)
	args := append([]string{"--addr", "127.0.0.1:0", "--insecure-no-auth", "--read-timeout", "2s", "--write-timeout", "3s",
		"--idle-timeout", "1s", "--log-level", "info"}, storeArgs...)
	if storeArgs == nil {
		args = append(args, "--data", t.TempDir())
	}
	if err := m.ParseFlags(append(args, extra...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})
	return &hostile{t: t, m: m, base: m.URL() + "/fhir", addr: m.listener.Addr().String(), logs: logs}
}

// do sends one request; header values in pairs.
func (h *hostile) do(method, path string, body []byte, header ...string) (int, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	// Beyond the longest write timeout: a late answer is the server's to
	// cut off, not the client's.
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// want4xx checks a 4xx answer with a valid OperationOutcome body.
func (h *hostile) want4xx(what string, code int, body []byte, status ...int) {
	h.t.Helper()
	if code < 400 || code > 499 || (len(status) > 0 && !containsInt(status, code)) {
		h.t.Errorf("%s: status %d, want %v: %.300s", what, code, status, body)
		return
	}
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity string `json:"severity"`
			Code     string `json:"code"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		h.t.Errorf("%s: status %d without an OperationOutcome: %.300s", what, code, body)
	}
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func (h *hostile) put(id, body string) {
	h.t.Helper()
	if code, _, b := h.do("PUT", "/Patient/"+id, []byte(body)); code != 200 && code != 201 {
		h.t.Fatalf("PUT Patient/%s: %d %s", id, code, b)
	}
}

// version reads the current version of a resource ("" when absent).
func (h *hostile) version(path string) string {
	h.t.Helper()
	code, hdr, _ := h.do("GET", path, nil)
	if code != 200 {
		return ""
	}
	return hdr.Get("ETag")
}

// healthy checks the server still answers, and writes and reads.
func (h *hostile) healthy(after string) {
	h.t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + h.addr + "/healthz")
	if err != nil {
		h.t.Fatalf("after %s: /healthz: %v", after, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("after %s: /healthz %d", after, resp.StatusCode)
	}
	if code, _, b := h.do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"ok"}}`)); code != 201 {
		h.t.Fatalf("after %s: create %d %s", after, code, b)
	}
}

// heapWatch samples the process heap until stopped and returns the peak.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

func runHostile(t *testing.T, storeArgs []string) {
	h := startHostile(t, storeArgs)
	stopWatch := heapWatch()
	h.put("cd-1", `{"resourceType":"Patient","id":"cd-1","identifier":[{"system":"http://x","value":"CD-1"}]}`)
	v1 := h.version("/Patient/cd-1")

	cases := []struct {
		name string
		run  func(t *testing.T, h *hostile)
	}{
		{"unreadable condition: conditional delete", func(t *testing.T, h *hostile) {
			code, _, b := h.do("DELETE", "/Patient?_id=cd-1&identifier=http://x|OTHER%zz", nil)
			h.want4xx("DELETE with %zz", code, b, 400)
		}},
		{"unreadable condition: conditional update", func(t *testing.T, h *hostile) {
			code, _, b := h.do("PUT", "/Patient?_id=cd-1&identifier=http://x|OTHER%zz", []byte(`{"resourceType":"Patient","active":false}`))
			h.want4xx("PUT with %zz", code, b, 400)
		}},
		{"unreadable condition: If-None-Exist", func(t *testing.T, h *hostile) {
			code, _, b := h.do("POST", "/Patient", []byte(`{"resourceType":"Patient"}`), "If-None-Exist", "identifier=http://x|CD-1&name=%G1")
			h.want4xx("If-None-Exist with %G1", code, b, 400)
		}},
		{"semicolon is data, not a separator", func(t *testing.T, h *hostile) {
			// Before: the pair with ';' vanished and the delete acted on
			// _id alone.
			code, _, b := h.do("DELETE", "/Patient?_id=cd-1&identifier=http://x|CD-1;x", nil)
			if code != 204 && code != 200 {
				t.Errorf("conditional delete matching nothing: %d %s", code, b)
			}
		}},
		{"unreadable pair under strict search", func(t *testing.T, h *hostile) {
			code, _, b := h.do("GET", "/Patient?_id=cd-1&identifier=%zz", nil, "Prefer", "handling=STRICT")
			h.want4xx("strict search with %zz", code, b, 400)
		}},
		{"unreadable pair under lenient search is reported", func(t *testing.T, h *hostile) {
			code, _, b := h.do("GET", "/Patient?_id=cd-1&identifier=%zz", nil)
			if code != 200 || !bytes.Contains(b, []byte(`"mode":"outcome"`)) || !bytes.Contains(b, []byte("%zz")) {
				t.Errorf("lenient search: %d %.400s", code, b)
			}
		}},
		{"501 comma-separated values", func(t *testing.T, h *hostile) {
			code, _, b := h.do("GET", "/Patient?name="+strings.Repeat("x,", 500)+"x", nil)
			h.want4xx("501 values", code, b, 400)
		}},
		{"490 repeated parameters", func(t *testing.T, h *hostile) {
			code, _, b := h.do("GET", "/Patient?"+strings.Repeat("name=x&", 489)+"name=x", nil)
			h.want4xx("490 repeats", code, b, 400)
		}},
		{"hundreds of sort keys", func(t *testing.T, h *hostile) {
			code, _, b := h.do("GET", "/Patient?_sort="+strings.Repeat("name,-birthdate,", 200)+"_id", nil)
			h.want4xx("400 sort keys", code, b, 400)
		}},
		{"many includes", func(t *testing.T, h *hostile) {
			code, _, b := h.do("GET", "/Observation?"+strings.Repeat("_include=Observation:subject&", 40), nil)
			h.want4xx("40 includes", code, b, 400)
		}},
		{"include fan-out beyond a backend's terms", func(t *testing.T, h *hostile) {
			// 46 patients, each referred to by observations through many
			// reference parameters: _revinclude=Observation:* names
			// hundreds of references, once a 500 on SQLite.
			var bundle []string
			for i := range 60 {
				id := fmt.Sprintf("fan-%d", i)
				h.put(id, `{"resourceType":"Patient","id":"`+id+`","name":[{"family":"Fan"}]}`)
				bundle = append(bundle, id)
			}
			for i, id := range bundle {
				body := fmt.Sprintf(`{"resourceType":"Observation","id":"o-%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"},"hasMember":[{"reference":"Observation/o-%d"}]}`, i, id, (i+1)%len(bundle))
				if code, _, b := h.do("PUT", fmt.Sprintf("/Observation/o-%d", i), []byte(body)); code >= 300 {
					t.Fatalf("create observation: %d %s", code, b)
				}
			}
			code, _, b := h.do("GET", "/Patient?family=Fan&_count=46&_revinclude=Observation:*", nil)
			if code != 200 || bytes.Count(b, []byte(`"mode":"include"`)) != 46 {
				t.Errorf("revinclude Observation:* over 46 patients: %d, %d included", code, bytes.Count(b, []byte(`"mode":"include"`)))
			}
			code, _, b = h.do("GET", "/Observation?_count=600&_revinclude=Observation:has-member", nil)
			if code != 200 {
				t.Errorf("revinclude has-member over 600: %d %.300s", code, b)
			}
		}},
		{"a page token of another type", func(t *testing.T, h *hostile) {
			code, _, b := h.do("GET", "/Patient?_count=1", nil)
			if code != 200 {
				t.Fatalf("search: %d", code)
			}
			var bundle struct {
				Link []struct{ Relation, URL string }
			}
			json.Unmarshal(b, &bundle)
			var next string
			for _, l := range bundle.Link {
				if l.Relation == "next" {
					next = l.URL
				}
			}
			if next == "" {
				t.Fatalf("no next link: %.300s", b)
			}
			u, _ := url.Parse(next)
			code, _, b = h.do("GET", "/Observation?_page="+url.QueryEscape(u.Query().Get("_page")), nil)
			h.want4xx("Patient page token on Observation", code, b, 400)
		}},
		{"ids . and ..", func(t *testing.T, h *hostile) {
			for _, id := range []string{".", "..", "..."} {
				code, hdr, b := h.do("PUT", "/Patient/"+url.PathEscape(id), []byte(`{"resourceType":"Patient","id":"`+id+`"}`))
				if code < 400 || strings.Contains(hdr.Get("Location"), "/../") {
					t.Errorf("PUT Patient/%s: %d Location %q %.200s", id, code, hdr.Get("Location"), b)
				}
			}
			code, hdr, b := h.do("PUT", "/Patient?identifier=http://x|none", []byte(`{"resourceType":"Patient","id":".."}`))
			if code < 400 || strings.Contains(hdr.Get("Location"), "/../") {
				t.Errorf("conditional PUT creating id '..': %d %q %.200s", code, hdr.Get("Location"), b)
			}
		}},
		{"foreign Host header", func(t *testing.T, h *hostile) {
			code, _, b := h.do("GET", "/Patient", nil, "Host", "evil.example.com")
			h.want4xx("Host evil.example.com", code, b, 421)
			if bytes.Contains(b, []byte("evil.example.com/fhir")) {
				t.Errorf("foreign host in links: %.300s", b)
			}
		}},
		{"PATCH with the wrong content type", func(t *testing.T, h *hostile) {
			code, _, b := h.do("PATCH", "/Patient/cd-1", []byte(`[]`))
			h.want4xx("PATCH as fhir+json", code, b, 415)
			if !bytes.Contains(b, []byte("application/json-patch+json")) {
				t.Errorf("415 does not name the patch media type: %s", b)
			}
		}},
		{"a million array entries", func(t *testing.T, h *hostile) {
			body := `{"resourceType":"Patient","id":"cd-1","name":[` + strings.Repeat(`{"text":"x"},`, 999_999) + `{"text":"x"}]}`
			code, _, b := h.do("PUT", "/Patient/cd-1", []byte(body))
			h.want4xx("1,000,000 names", code, b, 413)
		}},
		{"contained 3,000 levels deep", func(t *testing.T, h *hostile) {
			body := `{"resourceType":"Patient","id":"cd-1"` + strings.Repeat(`,"contained":[{"resourceType":"Patient"`, 3000) + strings.Repeat(`}]`, 3000) + `}`
			code, _, b := h.do("PUT", "/Patient/cd-1", []byte(body))
			h.want4xx("3,000-deep contained", code, b)
		}},
		{"a JSON Patch of 21 copies", func(t *testing.T, h *hostile) {
			ops := `[{"op":"add","path":"/name","value":[{"text":"` + strings.Repeat("x", 1000) + `"}]}`
			for range 21 {
				ops += `,{"op":"copy","from":"/name","path":"/name/-"}`
			}
			ops += "]"
			code, _, b := h.do("PATCH", "/Patient/cd-1", []byte(ops), "Content-Type", "application/json-patch+json")
			h.want4xx("21 copies", code, b)
		}},
		{"duplicate keys", func(t *testing.T, h *hostile) {
			code, _, b := h.do("POST", "/Observation", []byte(`{"resourceType":"Observation","resourceType":"Patient"}`))
			h.want4xx("two resourceTypes", code, b, 400)
		}},
		{"a null JSON Patch", func(t *testing.T, h *hostile) {
			for _, p := range []string{"null", "[]", "{}"} {
				code, _, b := h.do("PATCH", "/Patient/cd-1", []byte(p), "Content-Type", "application/json-patch+json")
				h.want4xx("patch "+p, code, b, 400)
			}
		}},
		{"body trickling at a byte a second", func(t *testing.T, h *hostile) {
			conn, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "PUT /fhir/Patient/slow HTTP/1.1\r\nHost: %s\r\nContent-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n", h.addr)
			start := time.Now()
			closed := make(chan struct{})
			go func() {
				io.Copy(io.Discard, conn)
				close(closed)
			}()
		send:
			for i := 0; i < 30; i++ {
				select {
				case <-closed:
					break send
				case <-time.After(time.Second):
					if _, err := conn.Write([]byte(" ")); err != nil {
						break send
					}
				}
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("a trickling body held its connection %v (read timeout 2 s)", d)
			}
			if v := h.version("/Patient/slow"); v != "" {
				t.Errorf("the trickled resource was stored: %s", v)
			}
		}},
		{"idle connections are closed", func(t *testing.T, h *hostile) {
			conn, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// A keep-alive request, then silence.
			fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", h.addr)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("idle keep-alive connection: %v, want EOF (closed by the server)", err)
			}
			// A connection that never sends a request.
			conn2, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn2.Close()
			conn2.SetReadDeadline(time.Now().Add(15 * time.Second))
			if _, err := conn2.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("silent connection: %v, want EOF", err)
			}
		}},
		{"clients that never read a large answer", func(t *testing.T, h *hostile) {
			// About 9 MB of Binary resources: each answer holds them all.
			data := strings.Repeat("QUJD", 150_000) // 600 KB base64
			for i := range 15 {
				body := fmt.Sprintf(`{"resourceType":"Binary","id":"big-%d","contentType":"text/plain","data":"%s"}`, i, data)
				if code, _, b := h.do("PUT", fmt.Sprintf("/Binary/big-%d", i), []byte(body)); code >= 300 {
					t.Fatalf("create binary: %d %.200s", code, b)
				}
			}
			var conns []net.Conn
			for range 10 {
				conn, err := net.Dial("tcp", h.addr)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, conn)
				fmt.Fprintf(conn, "GET /fhir/Binary?_count=20 HTTP/1.1\r\nHost: %s\r\n\r\n", h.addr)
			}
			// The write timeout (3 s) frees what the handlers hold while
			// the clients still hang on; on a loaded machine the handlers
			// may take longer to get to their writes, so the heap is
			// looked at again, for up to a minute, before it counts.
			time.Sleep(5 * time.Second)
			var inUse uint64
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if inUse = ms.HeapInuse; inUse <= 256<<20 || time.Now().After(deadline) {
					break
				}
			}
			for _, c := range conns {
				c.Close()
			}
			if inUse > 256<<20 {
				t.Errorf("heap in use %d MiB with the stalled readers cut off", inUse>>20)
			}
		}},
		{"a client that goes away is not a 500", func(t *testing.T, h *hostile) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			req := httptest.NewRequest("GET", "http://"+h.addr+"/fhir/Patient?name=x", nil).WithContext(ctx)
			w := httptest.NewRecorder()
			h.m.server.Handler.ServeHTTP(w, req)
			if w.Code == http.StatusInternalServerError {
				t.Errorf("canceled request answered 500: %s", w.Body)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			tc.run(t, h)
			h.healthy(tc.name)
		})
	}
	h.t = t
	if v := h.version("/Patient/cd-1"); v != v1 {
		t.Errorf("Patient/cd-1 changed by hostile requests: %s, was %s", v, v1)
	}
	peak := stopWatch()
	t.Logf("peak heap in use: %d MiB (ceiling %d MiB)", peak>>20, hostileHeapCeiling>>20)
	if peak > hostileHeapCeiling {
		t.Errorf("peak heap %d MiB over the ceiling %d MiB", peak>>20, hostileHeapCeiling>>20)
	}
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, `"status":500`) || strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("server logged a failure: %s", line)
		}
	}
	t.Run("concurrency bound", func(t *testing.T) { hostileConcurrency(t, storeArgs) })
}

// hostileConcurrency: with --max-concurrent 2, two stalled uploads hold both
// places; a third request waits briefly and gets 503 with Retry-After, and
// the server recovers once they are gone.
func hostileConcurrency(t *testing.T, storeArgs []string) {
	var args []string
	if storeArgs != nil {
		args = append(args, storeArgs[:2]...)
		args = append(args, "--mongo-db", storeArgs[3]+"c")
		args = append(args, storeArgs[4:]...) // FerretDB's longer write timeout
	}
	h := startHostile(t, args, "--max-concurrent", "2", "--read-timeout", "20s")
	var conns []net.Conn
	for i := range 2 {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		fmt.Fprintf(conn, "PUT /fhir/Patient/held-%d HTTP/1.1\r\nHost: %s\r\nContent-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{", i, h.addr)
	}
	time.Sleep(300 * time.Millisecond)
	code, hdr, b := h.do("GET", "/Patient", nil)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !bytes.Contains(b, []byte("OperationOutcome")) {
		t.Errorf("third request with two places held: %d Retry-After %q %.200s", code, hdr.Get("Retry-After"), b)
	}
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(300 * time.Millisecond)
	h.healthy("stalled uploads gone")
}
