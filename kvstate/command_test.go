package kvstate

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	cases := []Command{
		put(0, 0, "a", ""),
		put(1, 1, "key", "value"),
		update(1<<63, 1<<40, strings.Repeat("k", MaxKeySize), strings.Repeat("v", 1000)),
		remove(42, 7, "gone"),
		{Op: OpRegister},
	}
	for _, c := range cases {
		got, err := decodeCopy(c.Encode())
		if err != nil {
			t.Fatalf("decodeCopy(%v): %v", c.Op, err)
		}
		if got.ClientID != c.ClientID || got.Seq != c.Seq || got.Op != c.Op || got.Key != c.Key || !bytes.Equal(got.Value, c.Value) {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	good := put(1, 1, "k", "v").Encode()
	cases := map[string][]byte{
		"empty":          nil,
		"one byte":       {1},
		"bad version":    append([]byte{9}, good[1:]...),
		"version 1":      append([]byte{1}, good[1:]...),
		"op zero":        append([]byte{2, 0}, good[2:]...),
		"op unknown":     append([]byte{2, 5}, good[2:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"empty key":      put(1, 1, "", "v").Encode(),
		"huge key":       put(1, 1, strings.Repeat("k", MaxKeySize+1), "").Encode(),
		"remove value":   Command{ClientID: 1, Seq: 1, Op: OpRemove, Key: "k", Value: []byte("x")}.Encode(),
		"seq zero":       put(5, 0, "k", "v").Encode(),
		"overlong len":   {2, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"varint overrun": {2, 1, 0x80, 0x80},
		"register+id":    Command{Op: OpRegister, ClientID: 3}.Encode(),
		"register+seq":   Command{Op: OpRegister, Seq: 1}.Encode(),
		"register+key":   Command{Op: OpRegister, Key: "k"}.Encode(),
		"register+value": Command{Op: OpRegister, Value: []byte("v")}.Encode(),
	}
	for name, b := range cases {
		if _, err := decodeCopy(b); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: DecodeCommand = %v, want ErrBadCommand", name, err)
		}
	}
}

func TestValidateKV(t *testing.T) {
	const limit = 1 << 20
	if err := ValidateKV("k", make([]byte, limit), limit); err != nil {
		t.Fatalf("value at the limit: %v", err)
	}
	// A key alone is checked without a limit (Get, Remove).
	if err := ValidateKV("k", nil, 0); err != nil {
		t.Fatalf("key alone: %v", err)
	}
	cases := []struct {
		key   string
		value []byte
		max   int
		want  error
		msg   string
	}{
		{"", nil, 0, ErrEmptyKey, "empty key"},
		{strings.Repeat("k", 70000), nil, 0, ErrKeyTooLarge, "key of 70000 bytes exceeds the 64000-byte limit"},
		{"k", make([]byte, limit+1), limit, ErrValueTooLarge, "value of 1048577 bytes exceeds the 1048576-byte limit"},
		{"k", []byte("v"), 0, ErrValueTooLarge, "value of 1 bytes exceeds the 0-byte limit"},
		{"k", make([]byte, 11), 10, ErrValueTooLarge, "value of 11 bytes exceeds the 10-byte limit"},
	}
	for _, c := range cases {
		err := ValidateKV(c.key, c.value, c.max)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ValidateKV(%d-byte key, %d-byte value, %d) = %v; want %v mentioning %q", len(c.key), len(c.value), c.max, err, c.want, c.msg)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(put(1, 1, "k", "v").Encode())
	f.Add(remove(0, 0, "x").Encode())
	f.Add(Command{Op: OpRegister}.Encode())
	f.Add([]byte{2, 2, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCopy(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v does not wrap ErrBadCommand", err)
			}
			return
		}
		// Whatever decodes must survive its own round trip.
		c2, err := decodeCopy(c.Encode())
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", c, err)
		}
		if c2.ClientID != c.ClientID || c2.Seq != c.Seq || c2.Op != c.Op || c2.Key != c.Key || !bytes.Equal(c2.Value, c.Value) {
			t.Fatalf("round trip: %+v != %+v", c2, c)
		}
	})
}
