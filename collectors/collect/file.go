package collect

import (
	"bytes"
	"hash/fnv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/collectors/parse"
	"github.com/tpflow/tpflow/collectors/topology"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// StreamFile is the stream of lines from a file without a container
// wrapper.
const StreamFile = "file"

// fileState turns the lines of one followed file into events. Its Tailer
// calls handle; the agent's timer calls poll; mu serialises the two.
type fileState struct {
	a      *Agent
	src    *source
	path   string
	target logtail.Target

	mu        sync.Mutex
	container string
	parser    parse.Parser // nil: no parsing
	mapper    *parse.Mapper
	rec       parse.Record
	wrap      parse.Record // scratch of the Docker unwrapper
	call      parse.Call
	streams   [3]streamState // file, stdout, stderr
	sampleAcc float64

	labels     []schemas.Label // log labels
	labelBytes int             // bytes of the labels' names and values and of the path
	callLabels []schemas.Label // system, app, group, idc, env, host; the first four overridden per call
	base       topology.Labels
	logLS      uint32 // label set of labels in batch generation lsGen
	lsGen      uint64
	lastID     logtail.Identity
	lastEnd    int64
	srcID      logtail.Identity // identity of srcIDv
	srcIDv     uint64
	callLS     []callLSCache // by calls partition
	sourceSym  uint32        // symbols in batch generation lsGen
	syms       [len(symNames)]uint32
}

// callLSCache remembers the label set of the last call of one calls
// partition in one batch generation.
type callLSCache struct {
	gen                    uint64
	system, app, group, ic string
	ls                     uint32
}

// streamState holds one stream's joiner and multiline record.
type streamState struct {
	name      string
	join      *parse.Joiner
	fragStart int64 // offset of the first pending fragment, -1 if none
	fragTS    int64
	ml        *parse.Multiline
	mlLines   int
	recStart  int64
	recEnd    int64
	recTS     int64
	recID     logtail.Identity
	recTrunc  bool
}

func (a *Agent) newFileState(src *source, t logtail.Target) *fileState {
	fs := &fileState{a: a, src: src, path: t.Path, target: t, container: src.container(t)}
	fs.streams[0].name, fs.streams[1].name, fs.streams[2].name = StreamFile, parse.StreamStdout, parse.StreamStderr
	for i := range fs.streams {
		st := &fs.streams[i]
		st.fragStart = -1
		st.join = parse.NewJoiner(src.maxLine)
		if src.cfg.Multiline.Start != "" {
			ml, err := parse.NewMultiline(src.cfg.multiline(), src.maxLine, a.now)
			if err != nil {
				panic("BUG: agent: unvalidated multiline: " + err.Error())
			}
			st.ml = ml
		}
	}
	if src.parse.Format != "" {
		p, err := parse.NewParser(src.parse)
		if err != nil {
			panic("BUG: agent: unvalidated parser: " + err.Error())
		}
		m, err := parse.NewMapper(src.parse.Mapping)
		if err != nil {
			panic("BUG: agent: unvalidated mapping: " + err.Error())
		}
		fs.parser, fs.mapper = p, m
	}
	container := t.Container
	if container == "" && t.ContainerID != "" {
		container = shortID(t.ContainerID)
	}
	fs.base = a.topo.Resolve(topology.Source{Namespace: t.Namespace, Pod: t.Pod, Container: container, File: t.Path})
	fs.labels = []schemas.Label{
		{Name: schemas.LabelSystem, Value: fs.base.System},
		{Name: schemas.LabelApp, Value: fs.base.App},
		{Name: schemas.LabelGroup, Value: fs.base.Group},
		{Name: schemas.LabelIDC, Value: fs.base.IDC},
		{Name: schemas.LabelEnv, Value: fs.base.Env},
		{Name: schemas.LabelHost, Value: a.host},
		{Name: schemas.LabelNamespace, Value: t.Namespace},
		{Name: schemas.LabelPod, Value: t.Pod},
		{Name: schemas.LabelContainer, Value: container},
	}
	fs.callLabels = append([]schemas.Label(nil), fs.labels[:6]...)
	fs.labelBytes = len(t.Path)
	for _, l := range fs.labels {
		fs.labelBytes += len(l.Name) + len(l.Value)
	}
	return fs
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// handle is the Tailer's Handler. It never fails on content: a line that
// cannot be unwrapped or parsed becomes an unparsed log event. It returns
// an error only when the agent is stopping while the send queue is full.
func (fs *fileState) handle(l logtail.Line) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	a := fs.a
	fs.src.mLines.Inc()
	if fs.lastID != (logtail.Identity{}) && (!sameInode(fs.lastID, l.ID) || l.Offset < fs.lastEnd) {
		// Another file at the path (rename) or the same one from 0
		// (copytruncate): what is pending belongs to the old one.
		if err := fs.flushPending(); err != nil {
			return err
		}
	}
	fs.lastID, fs.lastEnd = l.ID, l.End
	a.bmu.Lock()
	defer a.bmu.Unlock()
	if err := fs.line(l); err != nil {
		return err
	}
	fs.a.b.setAck(fs, l.ID, fs.safeOffset(l.End))
	if fs.a.b.full() {
		return fs.a.b.cut(fs.a.readCtx)
	}
	return nil
}

func sameInode(a, b logtail.Identity) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

// safeOffset is end, or the start of the oldest record still pending in a
// joiner or multiline buffer: acknowledging past it would lose the record
// in a crash.
func (fs *fileState) safeOffset(end int64) int64 {
	for i := range fs.streams {
		st := &fs.streams[i]
		if st.fragStart >= 0 && st.fragStart < end {
			end = st.fragStart
		}
		if st.mlLines > 0 && st.recStart < end {
			end = st.recStart
		}
	}
	return end
}

// line takes one line apart; the caller holds a.bmu.
func (fs *fileState) line(l logtail.Line) error {
	a := fs.a
	var (
		st        *streamState
		data      = l.Data
		ts        int64
		truncated = l.Truncated
	)
	switch fs.container {
	case ContainerDocker, ContainerCRI:
		var cl parse.ContainerLine
		var err error
		if fs.container == ContainerDocker {
			cl, err = parse.UnwrapDocker(l.Data, &fs.wrap)
		} else {
			cl, err = parse.ParseCRI(l.Data)
		}
		if err != nil {
			a.m.unparsed.WithLabelValues(fs.src.cfg.Name, "container").Inc()
			return fs.emit(&fs.streams[0], l.ID, l.Offset, l.Data, 0, truncated, true)
		}
		st = &fs.streams[1]
		if cl.Stream == parse.StreamStderr {
			st = &fs.streams[2]
		}
		ts = cl.TimeUnixNano
		line, tr, done := st.join.Add(cl.Log, cl.Partial)
		if !done {
			if st.fragStart < 0 {
				st.fragStart, st.fragTS = l.Offset, ts
			}
			return nil
		}
		start := l.Offset
		if st.fragStart >= 0 {
			start, ts = st.fragStart, st.fragTS
			st.fragStart = -1
		}
		return fs.record(st, l.ID, start, l.End, line, ts, truncated || tr)
	default:
		st = &fs.streams[0]
		return fs.record(st, l.ID, l.Offset, l.End, data, ts, truncated)
	}
}

// record passes one whole line through the multiline joiner, if any.
func (fs *fileState) record(st *streamState, id logtail.Identity, start, end int64, line []byte, ts int64, truncated bool) error {
	if st.ml == nil {
		return fs.emit(st, id, start, line, ts, truncated, false)
	}
	rec, tr, done := st.ml.Add(line)
	if done {
		if err := fs.emit(st, st.recID, st.recStart, rec, st.recTS, tr || st.recTrunc, false); err != nil {
			return err
		}
		st.mlLines, st.recTrunc = 0, false
	}
	if st.mlLines == 0 {
		st.recStart, st.recTS, st.recID = start, ts, id
	}
	st.mlLines++
	st.recEnd = end
	if truncated {
		// The multiline buffer cannot carry the flag of one line; the
		// record holding it is marked when it is emitted.
		st.recTrunc = true
	}
	return nil
}

// flushPending emits every pending multiline record (a rotation or a time
// out) with its own file's acknowledgement.
func (fs *fileState) flushPending() error {
	a := fs.a
	a.bmu.Lock()
	defer a.bmu.Unlock()
	for i := range fs.streams {
		st := &fs.streams[i]
		if st.ml != nil && st.mlLines > 0 {
			rec, tr, done := st.ml.Flush()
			if done {
				if err := fs.emit(st, st.recID, st.recStart, rec, st.recTS, tr || st.recTrunc, false); err != nil {
					return err
				}
			}
			st.mlLines, st.recTrunc = 0, false
			a.b.setAck(fs, st.recID, st.recEnd)
		}
		st.fragStart = -1
		st.join = parse.NewJoiner(fs.src.maxLine)
	}
	return nil
}

// poll completes multiline records that waited their time-out.
func (fs *fileState) poll() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	a := fs.a
	a.bmu.Lock()
	defer a.bmu.Unlock()
	for i := range fs.streams {
		st := &fs.streams[i]
		if st.ml == nil || st.mlLines == 0 {
			continue
		}
		rec, tr, done := st.ml.Poll()
		if !done {
			continue
		}
		if err := fs.emit(st, st.recID, st.recStart, rec, st.recTS, tr || st.recTrunc, false); err != nil {
			return err
		}
		st.mlLines, st.recTrunc = 0, false
		if sameInode(st.recID, fs.lastID) {
			a.b.setAck(fs, fs.lastID, fs.safeOffset(fs.lastEnd))
		} else {
			a.b.setAck(fs, st.recID, st.recEnd)
		}
	}
	return nil
}

// emit turns one record into a log event and, if it maps, a call.
func (fs *fileState) emit(st *streamState, id logtail.Identity, off int64, rec []byte, ts int64, truncated, unwrapFailed bool) error {
	a, b, src := fs.a, fs.a.b, fs.src
	if truncated {
		src.mTruncated.Inc()
	}
	var now time.Time // read only when a call or a line has no time of its own
	unparsed := unwrapFailed
	level := ""
	var flag string // why a value of the line was dropped: a parse.Reason
	haveCall := false
	if fs.parser != nil && !unwrapFailed {
		if err := fs.parser.Parse(rec, &fs.rec); err != nil {
			unparsed = true
			a.m.unparsed.WithLabelValues(src.cfg.Name, parse.ErrorClass(err)).Inc()
		} else {
			level = fs.level()
			fs.call = parse.Call{}
			err := fs.mapper.Map(&fs.rec, &fs.call)
			if err == nil {
				c := &fs.call
				// A call's time comes from the line, or, when the mapping
				// names no timestamp field, from the container runtime
				// or the arrival; it must be in the accepted range.
				now = a.now()
				if !c.HasTS {
					c.TS = tsMillis(ts, now)
				}
				flag = a.cfg.CallTime.Check(c.TS, now.UnixMilli())
			} else {
				flag = parse.ErrorReason(err)
			}
			haveCall = err == nil && flag == ""
		}
	}
	// Make room before anything of this record is added: cut the batch if
	// the record could take a message over budget, and cut a record that
	// cannot fit even an empty batch.
	valid := utf8.Valid(rec)
	msgBytes := len(rec)
	if !valid {
		msgBytes = 3 * len(rec) // each invalid byte may become U+FFFD
	}
	callBytes := 0
	if haveCall {
		c := &fs.call
		callBytes = len(c.Method) + len(c.System) + len(c.App) + len(c.Group) + len(c.IDC) + fs.labelBytes + recordRoom
	}
	if !b.fits(msgBytes+fs.labelBytes+recordRoom, callBytes) && !b.empty() {
		if err := b.cut(a.readCtx); err != nil {
			return err
		}
	}
	maxMsg := b.cfg.MaxBytes - b.logs.Size() - fs.labelBytes - recordRoom
	if haveCall {
		c := &fs.call
		lbl := fs.callLabels
		lbl[0].Value, lbl[1].Value = or(c.System, fs.base.System), or(c.App, fs.base.App)
		lbl[2].Value, lbl[3].Value = or(c.Group, fs.base.Group), or(c.IDC, fs.base.IDC)
		pi, cp := b.partition(callKey{lbl[0].Value, lbl[1].Value, c.Method})
		if len(fs.callLS) != len(b.parts) {
			fs.callLS = make([]callLSCache, len(b.parts))
		}
		lc := &fs.callLS[pi]
		if lc.gen != b.gen || lc.system != lbl[0].Value || lc.app != lbl[1].Value || lc.group != lbl[2].Value || lc.ic != lbl[3].Value {
			*lc = callLSCache{gen: b.gen, system: lbl[0].Value, app: lbl[1].Value, group: lbl[2].Value, ic: lbl[3].Value, ls: cp.b.LabelSet(lbl)}
		}
		b.addCall(cp, lc.ls, c.Method, codec.Call{TsUnixMs: c.TS, LatencyUs: c.LatencyUS, Status: c.Status, OK: c.OK})
		a.m.calls.Inc()
	}
	if flag != "" {
		a.m.badValues.WithLabelValues(src.cfg.Name, flag).Inc()
	}
	// A flagged line is kept whatever min_level and sampling say: it is
	// the only trace of the call that was not emitted.
	if flag == "" && !fs.keep(level) {
		src.mDropped.Inc()
		return nil
	}
	if fs.lsGen != b.gen {
		fs.logLS, fs.lsGen = b.logs.LabelSet(fs.labels), b.gen
		fs.sourceSym = b.logs.Symbol(fs.path)
		clear(fs.syms[:])
	}
	streamSym, levelSym := fs.sym(st.name), fs.sym(level)
	var msg string
	if valid {
		if len(rec) > 0 {
			msg = unsafe.String(&rec[0], len(rec)) // AddLog copies it before rec changes
		}
	} else {
		msg = strings.ToValidUTF8(string(rec), "\uFFFD")
		unparsed = true
	}
	if len(msg) > maxMsg {
		// Larger than a whole batch: cut here, at a character boundary, so
		// the record is stored rather than refused downstream.
		n := max(maxMsg, 0)
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n]
		if !truncated {
			truncated = true
			src.mTruncated.Inc()
		}
	}
	if ts == 0 {
		if now.IsZero() {
			now = a.now()
		}
		ts = now.UnixNano()
	}
	if id != fs.srcID {
		fs.srcID, fs.srcIDv = id, sourceID(id)
	}
	e := logEvent{
		tsNano: ts, labels: fs.logLS, stream: streamSym, level: levelSym, message: msg,
		source: fs.sourceSym, sourceID: fs.srcIDv, offset: uint64(off), unparsed: unparsed, truncated: truncated,
		flag: flag,
	}
	if err := b.addLog(&e); err != nil {
		a.m.unparsed.WithLabelValues(src.cfg.Name, "encode").Inc()
		return nil
	}
	a.m.logs.Inc()
	return nil
}

// symNames are the stream and level names a file's events use; their
// symbols are looked up once per batch.
var symNames = [...]string{StreamFile, parse.StreamStdout, parse.StreamStderr, "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

// sym returns the symbol of a stream or level name in the current batch;
// the caller has made fs's cache current.
func (fs *fileState) sym(name string) uint32 {
	if name == "" {
		return 0
	}
	for i, n := range symNames {
		if n == name {
			if fs.syms[i] == 0 {
				fs.syms[i] = fs.a.b.logs.Symbol(name)
			}
			return fs.syms[i]
		}
	}
	return fs.a.b.logs.Symbol(name)
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func tsMillis(nano int64, now time.Time) int64 {
	if nano != 0 {
		return nano / 1e6
	}
	return now.UnixMilli()
}

// sourceID is the file's identity as one number: FNV-1a of device, inode
// and fingerprint. A file shorter than 1 KiB is fingerprinted over what it
// has, so its first lines can carry another source ID than its later ones.
func sourceID(id logtail.Identity) uint64 {
	h := fnv.New64a()
	var b [24]byte
	put := func(i int, v uint64) {
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	put(0, id.Dev)
	put(8, id.Ino)
	put(16, id.FP)
	h.Write(b[:])
	return h.Sum64()
}

// level reads the record's level field (level, lvl, severity, loglevel
// or log_level, the first present) and names it as min_level does.
func (fs *fileState) level() string {
	for i := range fs.rec.Fields {
		switch string(fs.rec.Fields[i].Key) {
		case "level", "lvl", "severity", "loglevel", "log_level":
			return normLevel(fs.rec.Fields[i].Value)
		}
	}
	return ""
}

func normLevel(v []byte) string {
	v = bytes.TrimSpace(v)
	if len(v) > 16 {
		return ""
	}
	var up [16]byte
	n := copy(up[:], v)
	for i := range n {
		if c := up[i]; c >= 'a' && c <= 'z' {
			up[i] = c - 'a' + 'A'
		}
	}
	switch string(up[:n]) {
	case "TRACE":
		return "TRACE"
	case "DEBUG", "DBG":
		return "DEBUG"
	case "INFO", "INFORMATION", "NOTICE":
		return "INFO"
	case "WARN", "WARNING":
		return "WARN"
	case "ERROR", "ERR":
		return "ERROR"
	case "FATAL", "CRITICAL", "CRIT", "PANIC", "EMERG", "ALERT":
		return "FATAL"
	}
	return ""
}

// keep applies min_level and sampling; lines at WARN and above are never
// sampled away.
func (fs *fileState) keep(level string) bool {
	rank, known := levels[level]
	if known && fs.src.minLevel > 0 && rank < fs.src.minLevel {
		return false
	}
	if fs.src.sample >= 1 || (known && rank >= levels["WARN"]) {
		return true
	}
	fs.sampleAcc += fs.src.sample
	if fs.sampleAcc >= 1 {
		fs.sampleAcc--
		return true
	}
	return false
}
