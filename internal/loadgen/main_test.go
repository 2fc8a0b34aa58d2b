package loadgen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRecordsRoundTrip(t *testing.T) {
	in := []Record{
		{Start: time.Unix(1, 5), End: time.Unix(2, 7), Status: 200, Value: "v1"},
		{Start: time.Unix(3, 0), End: time.Unix(3, 9), Status: 0},
	}
	var buf bytes.Buffer
	for _, r := range in {
		writeRecord(&buf, r)
	}
	path := filepath.Join(t.TempDir(), "records.txt")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ReadRecords(path)
	if err != nil || len(out) != 2 {
		t.Fatalf("ReadRecords = %v, %v", out, err)
	}
	for i := range in {
		if !out[i].Start.Equal(in[i].Start) || !out[i].End.Equal(in[i].End) || out[i].Status != in[i].Status || out[i].Value != in[i].Value {
			t.Fatalf("record %d: %+v, want %+v", i, out[i], in[i])
		}
	}
	if err := os.WriteFile(path, []byte("1 2 x v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecords(path); err == nil {
		t.Fatal("a bad line was accepted")
	}
}
