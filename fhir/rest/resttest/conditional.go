package resttest

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// raceWriters is how many clients send the same conditional request at once.
const raceWriters = 50

// raceResult is one client's answer in a race.
type raceResult struct {
	status int
	id     string // the resource's id, from the body or the Location header
}

// race sends n requests at once (req(i) says which) and returns the answers.
func race(t *testing.T, c *Client, n int, req func(i int) (method, path, body string, header []string)) []raceResult {
	t.Helper()
	out := make([]raceResult, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		method, path, body, header := req(i)
		wg.Go(func() {
			<-start
			var b []byte
			if body != "" {
				b = []byte(body)
			}
			r := c.Do(method, path, b, header...)
			out[i].status = r.Status
			if r.Status == http.StatusOK || r.Status == http.StatusCreated {
				id, _ := r.JSON(t)["id"].(string)
				out[i].id = id
			}
		})
	}
	close(start)
	wg.Wait()
	return out
}

// matches returns the ids a search finds (all of them: the count is small).
func matches(t *testing.T, c *Client, query string) []string {
	t.Helper()
	r := c.Do("GET", "/Patient?_count=100&"+query, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("search %s: %d %s", query, r.Status, r.Body)
	}
	var ids []string
	for _, e := range asList(r.JSON(t)["entry"]) {
		ids = append(ids, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
	}
	return ids
}

// checkOneResource checks that the race left exactly one resource matching
// query, that exactly one client created it (201) and every other client got
// 200 with that same resource.
func checkOneResource(t *testing.T, c *Client, query string, got []raceResult) string {
	t.Helper()
	ids := matches(t, c, query)
	if len(ids) != 1 {
		t.Fatalf("%s: %d resources after the race, want exactly 1 (%v)", query, len(ids), ids)
	}
	created := 0
	for i, r := range got {
		switch {
		case r.status == http.StatusCreated:
			created++
		case r.status != http.StatusOK:
			t.Errorf("client %d: %d, want 200 or 201", i, r.status)
		}
		if r.id != ids[0] {
			t.Errorf("client %d: answered with resource %q, want %q", i, r.id, ids[0])
		}
	}
	if created != 1 {
		t.Errorf("%s: %d clients got 201 Created, want exactly 1", query, created)
	}
	return ids[0]
}

// testConditionalRace sends the same conditional create, update and delete
// from many clients at once: the condition is evaluated and acted on
// atomically, so the race leaves exactly one resource (issue 8: 50 such
// creates made 40 resources, 50 such updates 27).
func testConditionalRace(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	body := func(value string) string {
		return fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"http://cu","value":%q}],"active":true}`, value)
	}

	t.Run("create", func(t *testing.T) {
		got := race(t, c, raceWriters, func(int) (string, string, string, []string) {
			return "POST", "/Patient", body("CREATE"), []string{"If-None-Exist", "identifier=http://cu|CREATE"}
		})
		checkOneResource(t, c, "identifier=http://cu|CREATE", got)
	})

	t.Run("update", func(t *testing.T) {
		got := race(t, c, raceWriters, func(int) (string, string, string, []string) {
			return "PUT", "/Patient?identifier=http://cu|ONE", body("ONE"), nil
		})
		id := checkOneResource(t, c, "identifier=http://cu|ONE", got)
		// Every update applied, one after the other: one version each.
		h := c.Do("GET", "/Patient/"+id+"/_history?_count=100", nil).JSON(t)
		if n := len(asList(h["entry"])); n != raceWriters {
			t.Errorf("history of %s has %d versions, want %d", id, n, raceWriters)
		}
	})

	// Creates and updates by the same condition, written in either
	// parameter order, serialise on one claim.
	t.Run("create and update, either order", func(t *testing.T) {
		got := race(t, c, raceWriters, func(i int) (string, string, string, []string) {
			cond := "identifier=http://cu|MIX&active=true"
			if i%4 >= 2 {
				cond = "active=true&identifier=http://cu|MIX"
			}
			if i%2 == 0 {
				return "POST", "/Patient", body("MIX"), []string{"If-None-Exist", cond}
			}
			return "PUT", "/Patient?" + cond, body("MIX"), nil
		})
		checkOneResource(t, c, "identifier=http://cu|MIX", got)
	})

	// Racing conditional deletes of one resource: the first deletes it, the
	// others then find nothing to delete (204 all), and one tombstone is
	// written, not one per client.
	t.Run("delete", func(t *testing.T) {
		r := c.Do("POST", "/Patient", []byte(body("DEL")))
		if r.Status != http.StatusCreated {
			t.Fatalf("seed: %d %s", r.Status, r.Body)
		}
		id, _ := r.JSON(t)["id"].(string)
		got := race(t, c, raceWriters, func(int) (string, string, string, []string) {
			return "DELETE", "/Patient?identifier=http://cu|DEL", "", nil
		})
		for i, r := range got {
			if r.status != http.StatusNoContent {
				t.Errorf("client %d: %d, want 204", i, r.status)
			}
		}
		h := c.Do("GET", "/Patient/"+id+"/_history?_count=100", nil).JSON(t)
		if n := len(asList(h["entry"])); n != 2 {
			t.Errorf("history of %s has %d versions, want 2 (the create and one delete)", id, n)
		}
		if ids := matches(t, c, "identifier=http://cu|DEL"); len(ids) != 0 {
			t.Errorf("deleted resource still found: %v", ids)
		}
	})
}
