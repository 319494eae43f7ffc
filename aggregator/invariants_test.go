package aggregator

// Every test of the package runs with the invariant checks on (Flush
// panics with BUG: when one emits a pane twice).
func init() { checkInvariants = true }

// reportHighWaterMark reports a partition's high-water mark, as the
// aggregate role does with every message.
func reportHighWaterMark(e *Engine, partition int32, hwm int64) { e.HighWaterMark(partition, hwm) }
