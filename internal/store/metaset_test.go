package store

import (
	"context"
	"testing"
)

func TestSetMetaAndPrefix(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if seq, err := s.LastEventSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("LastEventSeq of an empty log: %d %v", seq, err)
	}
	if err := s.SetMeta(ctx, map[string][]byte{"n.a": []byte("1"), "n.b": []byte("2"), "other": []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMeta(ctx, map[string][]byte{"n.a": []byte("3")}, []string{"n.b", "n.none"}); err != nil {
		t.Fatal(err)
	}
	// Another process of the same data directory reads what was written.
	s.Close()
	s = openTest(t, dir)
	got, err := s.MetaPrefix(ctx, "n.")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["n.a"]) != "3" {
		t.Fatalf("MetaPrefix: %q", got)
	}
	// A prefix is matched as it is, not as a LIKE pattern.
	if got, _ := s.MetaPrefix(ctx, "n_"); len(got) != 0 {
		t.Fatalf("MetaPrefix(n_): %q", got)
	}
	e, err := s.AppendEvent(ctx, Event{App: "shop", Kind: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if seq, _ := s.LastEventSeq(ctx); seq != e.Seq {
		t.Fatalf("LastEventSeq %d, want %d", seq, e.Seq)
	}
}
