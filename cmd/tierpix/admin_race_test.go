package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// TestEnsureAdminRace starts "replicas" on one fresh PostgreSQL schema at the same moment:
// every one of them must start, whoever creates the admin.
func TestEnsureAdminRace(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
	}{
		{name: "configured admin", cfg: config{AdminUsername: "ops", AdminPassword: "ops-password-1"}},
		{name: "generated admin", cfg: config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := range 5 {
				dbURL := storetest.NewSchema(t, storetest.PostgresURL(t))
				const replicas = 4
				stores := make([]*store.Store, replicas)
				for i := range stores {
					st, err := store.Open(context.Background(), store.Config{DatabaseURL: dbURL, DataDir: t.TempDir()})
					if err != nil {
						t.Fatalf("open store: %v", err)
					}
					t.Cleanup(func() { st.Close() })
					stores[i] = st
				}
				var wg sync.WaitGroup
				errs := make([]error, replicas)
				outs := make([]strings.Builder, replicas)
				start := make(chan struct{})
				for i := range stores {
					wg.Go(func() {
						<-start
						errs[i] = ensureAdmin(context.Background(), stores[i], tt.cfg, slog.New(slog.DiscardHandler), &outs[i])
					})
				}
				close(start)
				wg.Wait()
				printed := 0
				for i, err := range errs {
					if err != nil {
						t.Errorf("round %d, replica %d: got %v, want nil", round, i, err)
					}
					if strings.Contains(outs[i].String(), "password:") {
						printed++
					}
				}
				if n, err := stores[0].CountAdmins(context.Background()); err != nil || n != 1 {
					t.Errorf("round %d: admins: got %d (%v), want 1", round, n, err)
				}
				if tt.cfg.AdminUsername == "" && printed != 1 {
					t.Errorf("round %d: the generated password was printed %d times, want once", round, printed)
				}
			}
		})
	}
}
