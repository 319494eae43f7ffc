package collect

import (
	"context"
	"testing"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/schemas/codec"
)

// addTestLine adds a log line of file fs, ending at off, to b, as the
// tailer's handler does.
func addTestLine(t *testing.T, b *batcher, fs *fileState, id logtail.Identity, msg string, off int64) {
	t.Helper()
	e := logEvent{tsNano: 1, labels: b.logs.LabelSet(nil), stream: b.logs.Symbol("stdout"),
		level: b.logs.Symbol("info"), message: msg, source: b.logs.Symbol("app")}
	if err := b.addLog(&e); err != nil {
		t.Fatal(err)
	}
	b.setAck(fs, id, off)
}

// batchMessages decodes the log messages of a cut batch.
func batchMessages(t *testing.T, sb *sendBatch) []string {
	t.Helper()
	var out []string
	for _, m := range sb.logs {
		var cb codec.Batch
		if err := (codec.DecodeOptions{}).Decode(m.Value, &cb); err != nil {
			t.Fatal(err)
		}
		full, err := cb.Full()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range full.Logs {
			out = append(out, e.Message)
		}
	}
	return out
}

// A cut that fails because the agent is stopping (its context ended while
// the send queue was full) must keep the pending batch: the next cut, the
// agent's last one, sends its lines with the lines added after it. A
// batch dropped there is lost for good, since the acknowledgement of the
// later lines covers its lines too (lines missing, none twice).
func TestCutKeepsBatchWhenStopped(t *testing.T) {
	cfg := DefaultConfig()
	b := newBatcher(cfg.Batch, 1, "p", "h")
	fs := &fileState{}
	id := logtail.Identity{Dev: 1, Ino: 2}
	addTestLine(t, b, fs, id, "line 1", 10)
	for range cap(b.q) {
		b.q <- &sendBatch{}
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.cut(stopped); err == nil {
		t.Fatal("cut into a full queue with an ended context succeeded")
	}
	if b.events != 1 || len(b.acks) != 1 || b.acks[0].off != 10 {
		t.Fatalf("after the failed cut the pending batch holds %d events and acks %v, want line 1 acknowledged at 10", b.events, b.acks)
	}
	addTestLine(t, b, fs, id, "line 2", 20)
	for range cap(b.q) {
		<-b.q
	}
	if err := b.cut(context.Background()); err != nil {
		t.Fatal(err)
	}
	sb := <-b.q
	got := batchMessages(t, sb)
	if len(got) != 2 || got[0] != "line 1" || got[1] != "line 2" {
		t.Fatalf("the last batch holds %q, want line 1 and line 2", got)
	}
	if len(sb.acks) != 1 || sb.acks[0].off != 20 || sb.events != 2 {
		t.Fatalf("the last batch acknowledges %v with %d events, want offset 20 with 2", sb.acks, sb.events)
	}
	if b.events != 0 || len(b.acks) != 0 || b.logs.Len() != 0 {
		t.Fatalf("a queued batch was left pending: %d events, acks %v", b.events, b.acks)
	}
}

// A queue with room takes the batch even when the context has ended (the
// flush loop's last tick can come after the stop): a random pick between
// the two would drop half of such batches.
func TestCutPrefersRoomOverStop(t *testing.T) {
	cfg := DefaultConfig()
	b := newBatcher(cfg.Batch, 1, "p", "h")
	fs := &fileState{}
	id := logtail.Identity{Dev: 1, Ino: 2}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 64 {
		addTestLine(t, b, fs, id, "line", int64(i+1))
		if err := b.cut(stopped); err != nil {
			t.Fatalf("cut %d into a queue with room failed: %v", i, err)
		}
		sb := <-b.q
		if sb.events != 1 || len(sb.acks) != 1 || sb.acks[0].off != int64(i+1) {
			t.Fatalf("cut %d queued %d events, acks %v", i, sb.events, sb.acks)
		}
	}
}
