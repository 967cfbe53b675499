package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/ops/opstest"
)

// BenchmarkLookBack is the look-back of wmt-ig.md's target (under 20 ms in
// the issue): from a donor whose lots reached 1,000 recipients in three
// hospitals (two donations, ten lots, half of them a second processing of
// another), one procedure each and an adverse event for one in ten, traced
// by the bank, which sees every recipient de-identified; the $trace Bundle
// as the operation answers it.
//
// The look-back walks views kept up to date from the store's history, which
// reread the last minutes of it on every look-back (a write may commit
// after its stamp): "settled" is the registry written the day before,
// "just-written" the same registry written right before the look-backs, so
// that each rereads all of it.
func BenchmarkLookBack(b *testing.B) {
	for _, tc := range []struct {
		name string
		ago  time.Duration
	}{{"settled", 24 * time.Hour}, {"just-written", 0}} {
		b.Run(tc.name, func(b *testing.B) { benchLookBack(b, tc.ago) })
	}
}

func benchLookBack(b *testing.B, ago time.Duration) {
	r := opstest.NewRegistry(b, newStore(b))
	r.Now = func() time.Time { return time.Now().Add(-ago) }
	r.Donor("d1")
	r.Donation("don1", "d1", "2026-01-01")
	r.Donation("don2", "d1", "2026-01-08")
	lots := make([]string, 10)
	for i := range lots {
		lots[i] = fmt.Sprintf("l%d", i)
		switch {
		case i < 5:
			r.Lot(lots[i], "d1", []string{"don1", "don2"}[i%2])
		default:
			r.Lot(lots[i], "d1", lots[i-5])
		}
	}
	for i := range 1000 {
		h, p := fmt.Sprintf("h%d", i%3), fmt.Sprintf("r%d", i)
		r.Recipient(h, p)
		r.Procedure(h, "p"+p, p, lots[i%len(lots)])
		if i%10 == 0 {
			r.Event(h, "e"+p, p, "p"+p)
		}
	}
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	scopes := []string{"user/*.rs"}
	staff := &fhir.Principal{Tenant: "b1", TenantKind: fhir.TenantBank, Subject: "s",
		Roles: []fhir.Role{fhir.RoleBankStaff}, Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	ctx := context.Background()
	// The first look-back reads the whole registry into the views (and
	// checks what is found); the timed ones are those that follow.
	status, body, _, _, err := o.Operation(ctx, staff, "Patient", "d1", "$trace", nil, nil)
	if err != nil || status != 200 {
		b.Fatal(status, err)
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				Name []any `json:"name"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &bundle); err != nil {
		b.Fatal(err)
	}
	// donor, 2 donations, 10 lots, 1,000 recipients and procedures, 100 events
	if want := 1 + 2 + 10 + 2000 + 100; len(bundle.Entry) != want {
		b.Fatalf("the trace shows %d resources, want %d", len(bundle.Entry), want)
	}
	named := 0
	for _, e := range bundle.Entry {
		if e.Resource.Name != nil {
			named++
		}
	}
	if named != 1 { // the bank's own donor
		b.Fatalf("%d resources of the trace carry a name, want 1 (the donor)", named)
	}
	// The machine is shared: the process's CPU time per look-back is
	// reported beside the wall time.
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		n++
		if _, _, _, _, err := o.Operation(ctx, staff, "Patient", "d1", "$trace", nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
