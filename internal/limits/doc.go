// Package limits derives every size limit a value meets on its way through
// RaftKV from one number, the configuration's maxValueSize, so that the
// limits agree end to end: a value the configuration accepts fits a Raft
// log entry, the storage engine, a peer message, a transport batch and both
// directions of the client API, and a larger one is refused before anything
// is sent.
//
// What it owns: the arithmetic, and the bounds on protobuf framing it rests
// on (checked against real encodings by its tests). What it must never do:
// enforce anything itself, do I/O, or keep state. config.Validate refuses a
// maxValueSize For refuses; raftkv.Open hands the derived numbers to the
// transport (remote.Start), the nodes (actors.NodeConfig) and the client API
// server; raftkv.Dial uses the client's fixed limits.
//
// The link between two nodes must work even when their configurations differ
// (a cluster being reconfigured, or a log still holding entries written under
// a larger maxValueSize than today's): so a receiver accepts, whatever its
// own configuration, one message as large as any configuration allows
// (PeerMaxRecvMsgSize is the same for all), while a sender sizes its batches
// from its own maxValueSize. The Go client, which does not know the server's
// configuration, likewise accepts the largest reply any configuration allows
// and lets the server refuse what its own configuration does not.
package limits
