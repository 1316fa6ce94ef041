package kvstate

import (
	"encoding/binary"
	"fmt"
)

// Op is what a Command does to its key.
type Op uint8

// The operations. Zero is not an Op, so a zeroed or truncated command never
// decodes as a valid write.
const (
	// OpPut sets the key to the value, creating it if needed.
	OpPut Op = iota + 1
	// OpUpdate sets the key to the value only if the key exists; otherwise
	// it writes nothing and answers ErrNotFound.
	OpUpdate
	// OpRemove deletes the key if it exists; otherwise it writes nothing and
	// answers ErrNotFound. It carries no value.
	OpRemove
	// OpRegister opens a new client session (Raft thesis 6.3). It carries
	// no client id, sequence, key or value. The new session's id is the
	// log index of the entry that registered it (Result.ClientID): every
	// replica derives the same id, and no id is ever given out twice,
	// because every index holds exactly one committed entry.
	OpRegister
)

func (o Op) valid() bool { return o >= OpPut && o <= OpRegister }

// Limits on keys and values.
const (
	// MaxKeySize is the longest key accepted, in bytes. It is below 64 KiB
	// because Badger refuses keys over 65000 bytes and kvstate stores a user
	// key under a prefix of up to 6 bytes ("m/x/k/" while a Restore stages
	// it); 64000 keeps a round number with room to spare.
	MaxKeySize = 64000
	// MaxValueSizeLimit is the largest value limit any configuration may
	// set (64 MiB; internal/limits derives every other size from the
	// configured one). Every value travels inside a Raft log entry and a
	// replication message, so values of hundreds of megabytes would stall
	// replication for every other write.
	MaxValueSizeLimit = 64 << 20
	// MaxCommandOverhead bounds what an encoded Command adds to its key and
	// value: the version and op bytes and four varints. The largest Raft
	// entry a value limit allows is MaxKeySize + the limit + this.
	MaxCommandOverhead = 2 + 4*binary.MaxVarintLen64
)

// commandVersion is the first byte of every encoded Command. A new layout
// or a new meaning gets a new number, so old and new nodes never misread
// each other's bytes. Version 2: sessions must be registered (OpRegister);
// in version 1 a command with Seq 1 created its session implicitly.
const commandVersion = 2

// Command is one client request, carried in the Data of an EntryNormal.
type Command struct {
	// ClientID names a registered client session (see OpRegister); 0 means
	// no session: the command is executed every time it is applied, with no
	// duplicate detection, so it is only for proposers that never send a
	// command twice (tests, tools). The raftkv package and its client API
	// never propose a write without a session.
	ClientID uint64
	// Seq numbers the session's commands from 1, increasing. It must not be
	// 0 when ClientID is not 0.
	Seq uint64
	// Op says what to do with Key.
	Op Op
	// Key is the user key (non-empty, at most MaxKeySize bytes).
	Key string
	// Value is the new value for OpPut and OpUpdate; empty for OpRemove.
	Value []byte
}

// Encode returns the wire form of c:
//
//	version  1 byte (2)
//	op       1 byte
//	clientID uvarint
//	seq      uvarint
//	keyLen   uvarint, key bytes
//	valLen   uvarint, value bytes
//
// Varints keep the common case (small ids, short keys) compact. Encode does
// not validate: callers check with ValidateKV first, and Apply answers
// what should not have been sent with ErrBadCommand.
func (c Command) Encode() []byte {
	n := MaxCommandOverhead + len(c.Key) + len(c.Value)
	b := make([]byte, 0, n)
	b = append(b, commandVersion, byte(c.Op))
	b = binary.AppendUvarint(b, c.ClientID)
	b = binary.AppendUvarint(b, c.Seq)
	b = binary.AppendUvarint(b, uint64(len(c.Key)))
	b = append(b, c.Key...)
	b = binary.AppendUvarint(b, uint64(len(c.Value)))
	b = append(b, c.Value...)
	return b
}

// rawCommand is a decoded command whose key and value alias the input, so
// Apply can hand them to Badger without copying.
type rawCommand struct {
	clientID, seq uint64
	op            Op
	key, value    []byte
}

func decodeCommand(b []byte) (rawCommand, error) {
	var c rawCommand
	if len(b) < 2 {
		return c, fmt.Errorf("%w: %d bytes is shorter than the 2-byte header", ErrBadCommand, len(b))
	}
	if b[0] != commandVersion {
		return c, fmt.Errorf("%w: unknown version %d", ErrBadCommand, b[0])
	}
	c.op = Op(b[1])
	if !c.op.valid() {
		return c, fmt.Errorf("%w: unknown op %d", ErrBadCommand, b[1])
	}
	d := decoder{b: b, off: 2}
	c.clientID = d.uvarint("client id")
	c.seq = d.uvarint("sequence")
	c.key = d.bytes("key")
	c.value = d.bytes("value")
	if d.err != nil {
		return c, d.err
	}
	if d.off != len(b) {
		return c, fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(b)-d.off)
	}
	if c.op == OpRegister {
		if c.clientID != 0 || c.seq != 0 || len(c.key) != 0 || len(c.value) != 0 {
			return c, fmt.Errorf("%w: a register carries client %d, seq %d, a %d-byte key and a %d-byte value; it must carry none",
				ErrBadCommand, c.clientID, c.seq, len(c.key), len(c.value))
		}
		return c, nil
	}
	switch {
	case len(c.key) == 0:
		return c, fmt.Errorf("%w: %w", ErrBadCommand, ErrEmptyKey)
	case len(c.key) > MaxKeySize:
		return c, fmt.Errorf("%w: key of %d bytes exceeds the %d-byte limit", ErrBadCommand, len(c.key), MaxKeySize)
	case c.op == OpRemove && len(c.value) != 0:
		return c, fmt.Errorf("%w: remove carries a %d-byte value", ErrBadCommand, len(c.value))
	case c.clientID != 0 && c.seq == 0:
		return c, fmt.Errorf("%w: client %d sent sequence 0 (sequences start at 1)", ErrBadCommand, c.clientID)
	}
	return c, nil
}

// decoder reads a command's fields, remembering the first error so the
// caller checks once.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad %s varint at byte %d", ErrBadCommand, what, d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = fmt.Errorf("%w: %s of %d bytes overruns the %d bytes left", ErrBadCommand, what, n, len(d.b)-d.off)
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

// ValidateKV checks a key and value before they are proposed. maxValue is
// the value limit in bytes, the configuration's maxValueSize (package config
// holds its default). The proposer enforces it, not Apply: a limit is
// configuration, and Apply must answer the same on every replica whatever
// each one is configured with. Pass a nil value to check a key alone (for
// Get or Remove); maxValue is then not consulted.
func ValidateKV(key string, value []byte, maxValue int) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if len(value) > maxValue {
		return fmt.Errorf("%w: value of %d bytes exceeds the %d-byte limit", ErrValueTooLarge, len(value), maxValue)
	}
	return nil
}

func validateKey(key string) error {
	if key == "" {
		return ErrEmptyKey
	}
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes exceeds the %d-byte limit", ErrKeyTooLarge, len(key), MaxKeySize)
	}
	return nil
}
