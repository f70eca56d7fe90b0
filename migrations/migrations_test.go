package migrations

import "testing"

func TestAllOrderedAndUnique(t *testing.T) {
	ms, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d (%s) has version %d: versions must be 1..n without gaps", i, m.Name, m.Version)
		}
		if m.SQL == "" {
			t.Errorf("%s is empty", m.Name)
		}
	}
}
