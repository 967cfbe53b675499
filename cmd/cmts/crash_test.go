package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

// TestKill9Transactions kills the server with SIGKILL while transactions of
// a few hundred entries stream in, restarts it, and checks every
// transaction is entirely present or entirely absent, and every one it
// acknowledged is present: rounds on the embedded store and on a
// MongoDB-wire server (FerretDB, which has no multi-document transactions,
// so the store's own commit protocol is what is proved).
//
// Twenty rounds in all (five with -short): sixteen on the embedded store
// and four on FerretDB, where every query but a lookup by _id scans the
// collection, so each round and the read-back cost more.
func TestKill9Transactions(t *testing.T) {
	t.Parallel()
	const entries = 200
	sqliteRounds, mongoRounds := 16, 4
	if testing.Short() {
		sqliteRounds, mongoRounds = 3, 2
	}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		crashRounds(t, sqliteRounds, entries, time.Second, func() []string { return []string{"--data", dir} })
	})
	t.Run("mongo", func(t *testing.T) {
		t.Parallel()
		srv := mongotest.Start(t)
		db := srv.Database(t)
		// The read-back pages through every Observation, each page a scan
		// on FerretDB: on a loaded machine that can outlast the default
		// write timeout (2 min), which would cut the answer off. What is
		// proved here is the data, not its speed.
		crashRounds(t, mongoRounds, entries, 2*time.Second, func() []string {
			return []string{"--mongo-uri", srv.URI(), "--mongo-db", db, "--write-timeout", "10m"}
		})
	})
}

// crashRounds runs rounds of stream, kill -9, restart, check on one store.
// Each round kills once the server has acknowledged none, one or two of
// the round's transactions (at random; the first round one at least),
// then up to spread later: so the kills land at random points of the
// transactions in flight, and some transactions commit however slow the
// machine is.
func crashRounds(t *testing.T, rounds, entries int, spread time.Duration, storeArgs func() []string) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	start := time.Now()
	var sent []string
	var acked []string
	for round := range rounds {
		c := startChildArgs(t, storeArgs()...)
		var mu sync.Mutex
		var wg sync.WaitGroup
		ackedNow := make(chan struct{}, 1000)
		stop := make(chan struct{})
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					marker := fmt.Sprintf("r%d-w%d-t%d", round, w, k)
					mu.Lock()
					sent = append(sent, marker)
					mu.Unlock()
					resp, err := http.Post(c.base+"/fhir", "application/fhir+json", strings.NewReader(crashTransaction(marker, entries)))
					if err != nil {
						return // the server is gone
					}
					ok := resp.StatusCode == 200
					resp.Body.Close()
					if !ok {
						t.Errorf("transaction %s: %d", marker, resp.StatusCode)
						return
					}
					mu.Lock()
					acked = append(acked, marker)
					mu.Unlock()
					ackedNow <- struct{}{}
				}
			}()
		}
		timeout := time.After(time.Minute)
		acks := rng.IntN(3)
		if round == 0 {
			// At least one acknowledged transaction, whatever the draws:
			// four rounds of no wait and an early kill happened (1 Dec
			// 2026), and proved nothing.
			acks = max(acks, 1)
		}
	wait:
		for range acks {
			select {
			case <-ackedNow:
			case <-timeout:
				break wait
			}
		}
		time.Sleep(time.Duration(rng.Int64N(int64(spread))))
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.cmd.Wait()
		close(stop)
		wg.Wait()
	}
	streamed := time.Since(start)
	c := startChildArgs(t, storeArgs()...)
	isAcked := map[string]bool{}
	for _, m := range acked {
		isAcked[m] = true
	}
	// One pass over every Observation (a count per transaction would be
	// a scan each on FerretDB), tallied by marker; without a total, which
	// costs FerretDB two more scans a page.
	found := map[string]int{}
	next := c.base + "/fhir/Observation?_count=1000&_elements=identifier&_total=none"
	for next != "" {
		code, body, _ := do(t, "GET", next, "")
		if code != 200 {
			t.Fatalf("read back: %d %.300s", code, body)
		}
		var b struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource struct {
					Identifier []struct{ System, Value string }
				}
			}
		}
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entry {
			for _, id := range e.Resource.Identifier {
				if id.System == "http://crash.test/marker" {
					found[id.Value]++
				}
			}
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	readBack := time.Since(start) - streamed
	present := 0
	for _, m := range sent {
		switch n := found[m]; {
		case n != 0 && n != entries:
			t.Errorf("transaction %s is half there: %d of %d entries", m, n, entries)
		case n == 0 && isAcked[m]:
			t.Errorf("acknowledged transaction %s is lost", m)
		case n == entries:
			present++
		}
	}
	if len(acked) == 0 {
		// Kills that always land before the first commit prove little.
		t.Errorf("no transaction acknowledged in %d rounds", rounds)
	}
	// What a crash left behind does not block later writes to the same ids.
	at := time.Now()
	if code, body, _ := do(t, "POST", c.base+"/fhir", crashTransaction("after", entries)); code != 200 {
		t.Errorf("a transaction after the crashes: %d %.300s", code, body)
	}
	after := time.Since(at)
	t.Logf("%d rounds of %d-entry transactions: %d sent, %d acknowledged, %d present, none half there; streaming and kills %v, restart and read-back %v, one more transaction %v",
		rounds, entries, len(sent), len(acked), present, streamed.Round(time.Millisecond), readBack.Round(time.Millisecond), after.Round(time.Millisecond))
}

// crashTransaction is a transaction of n Observations (about 1 KB each)
// sharing one marker.
func crashTransaction(marker string, n int) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":{"resourceType":"Observation","status":"final",`+
			`"identifier":[{"system":"http://crash.test/marker","value":%q},{"system":"http://crash.test/n","value":"%d"}],`+
			`"code":{"text":"crash test"},"valueString":%q},"request":{"method":"POST","url":"Observation"}}`, i, marker, i, strings.Repeat("x", 600))
	}
	b.WriteString(`]}`)
	return b.String()
}
