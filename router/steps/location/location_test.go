package location

import (
	"testing"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

func TestTargetGroups(t *testing.T) {
	b := func(uri string, q int32) *registrarv1.Binding { return &registrarv1.Binding{Uri: uri, Q: q} }
	tests := []struct {
		name     string
		bindings []*registrarv1.Binding
		want     [][]string
	}{
		{"none", nil, nil},
		{"one", []*registrarv1.Binding{b("sip:a@h", 0)}, [][]string{{"sip:a@h"}}},
		{
			"unset q is 1.0 and order within a group is kept",
			[]*registrarv1.Binding{b("sip:a@h", 500), b("sip:b@h", 0), b("sip:c@h", 1000), b("sip:d@h", 500)},
			[][]string{{"sip:b@h", "sip:c@h"}, {"sip:a@h", "sip:d@h"}},
		},
		{
			"three groups",
			[]*registrarv1.Binding{b("sip:a@h", 100), b("sip:b@h", 900), b("sip:c@h", 500)},
			[][]string{{"sip:b@h"}, {"sip:c@h"}, {"sip:a@h"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			groups := targetGroups(tc.bindings)
			if len(groups) != len(tc.want) {
				t.Fatalf("%d groups, want %d", len(groups), len(tc.want))
			}
			for i, g := range groups {
				var got []string
				for _, tg := range g.GetTargets() {
					got = append(got, tg.GetRequestUri())
				}
				if len(got) != len(tc.want[i]) {
					t.Fatalf("group %d = %v, want %v", i, got, tc.want[i])
				}
				for j := range got {
					if got[j] != tc.want[i][j] {
						t.Fatalf("group %d = %v, want %v", i, got, tc.want[i])
					}
				}
			}
		})
	}
}
