package store_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
)

// testBcryptCost keeps password hashing fast in tests; the cost is checked to pass through.
const testBcryptCost = bcrypt.MinCost

func TestHashPassword(t *testing.T) {
	tests := []struct {
		name     string
		password string
		cost     int
		wantCost int
		wantCode string
	}{
		{name: "valid", password: "correct horse", cost: testBcryptCost, wantCost: testBcryptCost},
		{name: "too short", password: "short", cost: testBcryptCost, wantCode: tierpix.EINVALID},
		{name: "too long", password: strings.Repeat("x", tierpix.MaxPasswordLength+1), cost: testBcryptCost, wantCode: tierpix.EINVALID},
		{name: "longest", password: strings.Repeat("x", tierpix.MaxPasswordLength), cost: testBcryptCost, wantCost: testBcryptCost},
		{name: "default cost", password: "correct horse", cost: 0, wantCost: bcrypt.DefaultCost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, err := store.HashPassword(tt.password, tt.cost)
			if got := tierpix.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("error code: got %q (%v), want %q", got, err, tt.wantCode)
			}
			if err != nil {
				return
			}
			if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(tt.password)); err != nil {
				t.Errorf("compare: got %v, want nil", err)
			}
			if cost, _ := bcrypt.Cost([]byte(hash)); cost != tt.wantCost {
				t.Errorf("cost: got %d, want %d", cost, tt.wantCost)
			}
		})
	}
}
