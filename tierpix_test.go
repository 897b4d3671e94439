package tierpix_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tierpix/tierpix"
)

func TestTierValidate(t *testing.T) {
	tests := []struct {
		name   string
		tier   tierpix.Tier
		fields []string // fields at fault; none means valid
	}{
		{name: "valid", tier: tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{150, 600}}},
		{name: "no heights", tier: tierpix.Tier{Name: "originals-only", OriginalLink: true}},
		{name: "empty name", tier: tierpix.Tier{Name: ""}, fields: []string{"name"}},
		{name: "name with a slash", tier: tierpix.Tier{Name: "a/b"}, fields: []string{"name"}},
		{name: "name starting with a dash", tier: tierpix.Tier{Name: "-x"}, fields: []string{"name"}},
		{name: "reserved name", tier: tierpix.Tier{Name: "new"}, fields: []string{"name"}},
		{name: "name too long", tier: tierpix.Tier{Name: strings.Repeat("a", 65)}, fields: []string{"name"}},
		{name: "zero height", tier: tierpix.Tier{Name: "x", ThumbnailHeights: []int{0}}, fields: []string{"thumbnail_heights"}},
		{name: "height too large", tier: tierpix.Tier{Name: "x", ThumbnailHeights: []int{tierpix.MaxThumbnailHeight + 1}}, fields: []string{"thumbnail_heights"}},
		{name: "too many heights", tier: tierpix.Tier{Name: "x", ThumbnailHeights: make17()}, fields: []string{"thumbnail_heights"}},
		{name: "both wrong", tier: tierpix.Tier{Name: "", ThumbnailHeights: []int{-1}}, fields: []string{"name", "thumbnail_heights"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tier.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if code := tierpix.ErrorCode(err); code != tierpix.EINVALID {
				t.Fatalf("got code %q, want %q", code, tierpix.EINVALID)
			}
			got := tierpix.ErrorFields(err)
			if len(got) != len(tt.fields) {
				t.Fatalf("got fields %v, want %v", got, tt.fields)
			}
			for _, f := range tt.fields {
				if got[f] == "" {
					t.Fatalf("got fields %v, want a message for %q", got, f)
				}
			}
		})
	}
}

func make17() []int {
	hs := make([]int, tierpix.MaxThumbnailHeights+1)
	for i := range hs {
		hs[i] = i + 1
	}
	return hs
}

func TestTierNormalizeAndAllows(t *testing.T) {
	tier := tierpix.Tier{Name: "x", ThumbnailHeights: []int{400, 200, 400, 100}}
	tier.Normalize()
	if got := fmt.Sprint(tier.ThumbnailHeights); got != "[100 200 400]" {
		t.Fatalf("normalized heights: got %s, want [100 200 400]", got)
	}
	for h, want := range map[int]bool{100: true, 200: true, 400: true, 300: false, 0: false, 800: false} {
		if got := tier.AllowsHeight(h); got != want {
			t.Errorf("AllowsHeight(%d): got %v, want %v", h, got, want)
		}
	}
	var empty tierpix.Tier
	empty.Normalize()
	if empty.ThumbnailHeights == nil {
		t.Fatal("normalized nil heights: got nil, want an empty slice (JSON [] rather than null)")
	}
}

func TestUsernameAndPassword(t *testing.T) {
	for _, name := range []string{"alice", "a.b@c+d_e-f", strings.Repeat("x", 150)} {
		if err := tierpix.ValidateUsername(name); err != nil {
			t.Errorf("ValidateUsername(%q): got %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "a b", "a:b", "a/b", strings.Repeat("x", 151), "é", ".", "..", "new"} {
		if err := tierpix.ValidateUsername(name); tierpix.ErrorFields(err)["username"] == "" {
			t.Errorf("ValidateUsername(%q): got %v, want a username field error", name, err)
		}
	}
	for pw, ok := range map[string]bool{"1234567": false, "12345678": true, strings.Repeat("p", 72): true, strings.Repeat("p", 73): false} {
		err := tierpix.ValidatePassword(pw)
		if (err == nil) != ok {
			t.Errorf("ValidatePassword(%d bytes): got %v, want ok=%v", len(pw), err, ok)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	wrapped := fmt.Errorf("context: %w", tierpix.Errorf(tierpix.ENOTFOUND, "No such %s.", "thing"))
	tests := []struct {
		name    string
		err     error
		code    string
		message string
	}{
		{name: "nil", err: nil, code: "", message: ""},
		{name: "plain error is internal", err: errors.New("disk on fire"), code: tierpix.EINTERNAL, message: "Internal error."},
		{name: "wrapped tierpix error", err: wrapped, code: tierpix.ENOTFOUND, message: "No such thing."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tierpix.ErrorCode(tt.err); got != tt.code {
				t.Errorf("code: got %q, want %q", got, tt.code)
			}
			if got := tierpix.ErrorMessage(tt.err); got != tt.message {
				t.Errorf("message: got %q, want %q", got, tt.message)
			}
		})
	}
}
