package analytics

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// The embedded store's log, dir/analytics.log, is binary:
//
//	file    = magic record*
//	magic   = "LTANLOG1"
//	record  = len:uint32le crc:uint32le payload[len]   (crc32c of payload)
//	payload = 'D' uvarint(groups) group*                cells of one batch
//	        | 'W' varint(activity) uvarint(width)       an activity's bucket width
//	group   = varint(activity) varint(second) uvarint(cells) cell*
//	cell    = kind:byte (lat:byte | uvarint(len) name) uvarint(count)
//
// A cell's kind is 1 outcome, 2 award, 3 latency bucket or 4 module (its
// name packs the module name, version and outcome, see moduleKey). Kind 4
// came later: a log without it replays, and its draws simply count under
// no module version; a version of the store that predates it refuses such
// a log instead of losing data.
//
// A record holds a batch's aggregate, not its events, so a batch of
// thousands of draws in one second is a few hundred bytes. Replay applies
// the records in order and stops at the first one that is short or fails its
// checksum: that is the torn tail of a crash, and it is cut off. On open, and
// whenever the log has grown past twice its last compacted size (and at
// least compactMin), the log is rewritten from the counts in memory (a
// snapshot in the same record format) into a temporary file that is synced
// and renamed over the old one, so disk use stays proportional to memory use.
const (
	logName      = "analytics.log"
	logMagic     = "LTANLOG1"
	maxRecord    = 1 << 28
	compactMin   = 64 << 20
	snapshotRows = 1024 // rows per snapshot record
	recDelta     = 'D'
	recWidth     = 'W'
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// eventLog is the open log file. It is used under Embedded.wmu.
type eventLog struct {
	dir       string
	f         *os.File
	size      int64 // bytes of valid records, header included
	compactAt int64 // compact when size reaches this
	broken    error // set when a failed append could not be undone
}

// openLog opens or creates dir/analytics.log and replays it into e. It
// returns the log positioned for appends and the number of torn bytes
// discarded from its tail.
func openLog(dir string, e *Embedded) (*eventLog, int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("analytics: %w", err)
	}
	path := filepath.Join(dir, logName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("analytics: %w", err)
	}
	l := &eventLog{dir: dir, f: f}
	size, torn, err := replay(bufio.NewReaderSize(f, 1<<16), e)
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("analytics: replay %s: %w", path, err)
	}
	l.size = size
	return l, torn, nil
}

// replay applies every whole record read from r to e and returns the length
// of the valid prefix and of the discarded tail. A short record or a
// checksum mismatch ends the valid prefix; a read error is returned.
func replay(r io.Reader, e *Embedded) (valid, torn int64, err error) {
	cr := &countingReader{r: r}
	head := make([]byte, len(logMagic))
	n, err := io.ReadFull(cr, head)
	switch {
	case err == nil && string(head) == logMagic:
	case (err == io.EOF || err == io.ErrUnexpectedEOF) && bytes.HasPrefix([]byte(logMagic), head[:n]):
		return 0, int64(n), nil // torn while being created
	case err == nil || err == io.EOF || err == io.ErrUnexpectedEOF:
		return 0, 0, errors.New("not an analytics log")
	default:
		return 0, 0, err
	}
	valid = int64(len(logMagic))
	var hdr [8]byte
	var payload bytes.Buffer
	for {
		if _, err := io.ReadFull(cr, hdr[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			return 0, 0, err
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		if n == 0 || n > maxRecord {
			break
		}
		payload.Reset()
		// CopyN grows the buffer with the data read, so a corrupt length
		// costs no allocation beyond the bytes actually there.
		if _, err := io.CopyN(&payload, cr, int64(n)); err != nil {
			if err == io.EOF {
				break
			}
			return 0, 0, err
		}
		if crc32.Checksum(payload.Bytes(), crcTable) != binary.LittleEndian.Uint32(hdr[4:8]) {
			break
		}
		if err := decodeRecord(payload.Bytes(), e); err != nil {
			// The checksum held, so this is not a torn write but a record
			// this version cannot read: refuse rather than lose data.
			return 0, 0, fmt.Errorf("record at offset %d: %w", valid, err)
		}
		valid += int64(8 + n)
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return 0, 0, err
	}
	return valid, cr.n - valid, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// append writes one record and syncs it. If the write fails the file is cut
// back to its previous length so no torn record sits before later ones.
func (l *eventLog) append(payload []byte) error {
	if l.broken != nil {
		return l.broken
	}
	rec := appendRecord(make([]byte, 0, 8+len(payload)), payload)
	_, err := l.f.WriteAt(rec, l.size)
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		if terr := l.f.Truncate(l.size); terr != nil {
			l.broken = fmt.Errorf("log unusable after a failed write: %w", errors.Join(err, terr))
		}
		return err
	}
	l.size += int64(len(rec))
	return nil
}

// appendRecord appends payload framed as a record (length, checksum) to dst.
func appendRecord(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, crcTable))
	return append(dst, payload...)
}

func (l *eventLog) close() error {
	return l.f.Close()
}

// compactLocked rewrites the log as a snapshot of the counts in memory. The
// caller holds wmu (or owns e alone), so no batch is applied meanwhile.
func (e *Embedded) compactLocked() error {
	l := e.log
	tmp := filepath.Join(l.dir, logName+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("analytics: compact: %w", err)
	}
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("analytics: compact: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	size := int64(len(logMagic))
	if _, err := w.WriteString(logMagic); err != nil {
		return fail(err)
	}
	e.mu.RLock()
	var rec []byte
	err = e.snapshot(func(payload []byte) error {
		rec = appendRecord(rec[:0], payload)
		size += int64(len(rec))
		_, err := w.Write(rec)
		return err
	})
	e.mu.RUnlock()
	if err != nil {
		return fail(err)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(l.dir, logName)); err != nil {
		return fail(err)
	}
	syncDir(l.dir)
	_ = l.f.Close()
	l.f, l.size, l.broken = f, size, nil
	l.compactAt = max(2*size, compactMin)
	return nil
}

// syncDir makes a rename in dir durable; failure only weakens durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// snapshot emits records that rebuild the current counts: per activity its
// bucket width, then its rows, snapshotRows at a time. The caller holds mu.
func (e *Embedded) snapshot(emit func(payload []byte) error) error {
	ids := make([]int64, 0, len(e.acts))
	for id := range e.acts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var buf []byte
	for _, id := range ids {
		s := e.acts[id]
		if s.width > 1 {
			buf = append(buf[:0], recWidth)
			buf = binary.AppendVarint(buf, id)
			buf = binary.AppendUvarint(buf, uint64(s.width))
			if err := emit(buf); err != nil {
				return err
			}
		}
		for r0 := 0; r0 < len(s.secs); r0 += snapshotRows {
			r1 := min(r0+snapshotRows, len(s.secs))
			buf = append(buf[:0], recDelta)
			buf = binary.AppendUvarint(buf, uint64(r1-r0))
			for r := r0; r < r1; r++ {
				buf = binary.AppendVarint(buf, id)
				buf = binary.AppendVarint(buf, s.secs[r])
				n := 0
				for c := range s.cols {
					if s.cols[c][r] != 0 {
						n++
					}
				}
				buf = binary.AppendUvarint(buf, uint64(n))
				for c, k := range s.keys {
					if v := s.cols[c][r]; v != 0 {
						buf = appendCell(buf, k, v)
					}
				}
			}
			if err := emit(buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// encodeCells appends a delta payload for cells (ordered by activity and
// second) to buf.
func encodeCells(buf []byte, cells []cell) []byte {
	groups := 0
	for i := range cells {
		if i == 0 || cells[i].act != cells[i-1].act || cells[i].sec != cells[i-1].sec {
			groups++
		}
	}
	buf = append(buf, recDelta)
	buf = binary.AppendUvarint(buf, uint64(groups))
	for i := 0; i < len(cells); {
		j := i + 1
		for j < len(cells) && cells[j].act == cells[i].act && cells[j].sec == cells[i].sec {
			j++
		}
		buf = binary.AppendVarint(buf, cells[i].act)
		buf = binary.AppendVarint(buf, cells[i].sec)
		buf = binary.AppendUvarint(buf, uint64(j-i))
		for _, c := range cells[i:j] {
			buf = appendCell(buf, c.key, c.n)
		}
		i = j
	}
	return buf
}

func appendCell(buf []byte, k colKey, n uint64) []byte {
	buf = append(buf, byte(k.kind))
	if k.kind == kindLatency {
		buf = append(buf, k.lat)
	} else {
		buf = binary.AppendUvarint(buf, uint64(len(k.name)))
		buf = append(buf, k.name...)
	}
	return binary.AppendUvarint(buf, n)
}

// decodeRecord applies one record's payload to e. It validates the whole
// payload before applying any of it.
func decodeRecord(p []byte, e *Embedded) error {
	d := decoder{p: p}
	switch d.byte() {
	case recWidth:
		act, width := d.varint(), d.uvarint()
		if d.err == nil && (width == 0 || width&(width-1) != 0 || width > 1<<40) {
			d.err = fmt.Errorf("bad bucket width %d", width)
		}
		if err := d.end(); err != nil {
			return err
		}
		e.setWidth(act, int64(width))
		return nil
	case recDelta:
		groups := d.uvarint()
		var cells []cell
		for g := uint64(0); g < groups && d.err == nil; g++ {
			act, sec, n := d.varint(), d.varint(), d.uvarint()
			for i := uint64(0); i < n && d.err == nil; i++ {
				c := cell{act: act, sec: sec, key: colKey{kind: kind(d.byte())}}
				switch c.key.kind {
				case kindLatency:
					c.key.lat = d.byte()
					if d.err == nil && int(c.key.lat) >= latBuckets {
						d.err = fmt.Errorf("bad latency bucket %d", c.key.lat)
					}
				case kindOutcome, kindAward, kindModule:
					c.key.name = d.string()
				default:
					d.err = fmt.Errorf("bad column kind %d", c.key.kind)
				}
				c.n = d.uvarint()
				cells = append(cells, c)
			}
		}
		if err := d.end(); err != nil {
			return err
		}
		for _, c := range cells {
			e.apply(c)
		}
		return nil
	default:
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("bad record type %q", p[0])
	}
}

// decoder reads a payload; the first error sticks and later reads return zero.
type decoder struct {
	p   []byte
	err error
}

var errShort = errors.New("record too short")

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.p) == 0 {
		d.err = errShort
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.p)) {
		d.err = errShort
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	return s
}

// end reports the first error, or an error if bytes are left over.
func (d *decoder) end() error {
	if d.err == nil && len(d.p) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.p))
	}
	return d.err
}
