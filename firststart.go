package raftkv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/persist"
)

// An embedded cluster's nodes make their first start one after another,
// each writing its identity file and then recording config.yaml's members
// (see actors.openNodeStorage). A crash or power cut between them leaves
// some nodes with data and some without: the state a grown serversNum
// leaves too, but with the opposite answer.
//
//   - First start interrupted: the nodes without data never had any, so
//     they never voted and never acknowledged an entry (a node syncs those
//     promises before it sends them), and each node with data recorded the
//     members the others would record, or nothing yet. Starting the rest as
//     bootstrap members of that configuration is what the interrupted Open
//     would have done; no client write was acknowledged, since Open had not
//     returned. Refusing would leave a database that never opens again.
//   - serversNum grew: the new nodes are not in the configuration the
//     others recorded, and started as bootstrap members of a larger one
//     they could elect a leader of their own. Refused.
//   - A node's data was lost after the cluster was created: started empty
//     it would forget its votes and acknowledgements, and could help elect
//     a leader missing committed writes. Refused as well.
//
// The data alone cannot tell the first case from the third (the lost node
// was a member of the recorded configuration too), so the DB records the
// fact: firstStartFile, in the persist path, written durably before any
// node writes, when no node has data; removed once every node's first
// start is durable (each node reports its start after its synced writes).
// While the file exists, every configuration a node recorded is the
// members the file lists: the file is written only when no node has data,
// and while it exists Open starts no node unless the configuration has
// exactly the members it lists. So with some nodes lacking data Open goes
// on only when the file is there (and lists the configured members);
// without it (a created cluster, or one created by a version before the
// file existed) it refuses as before.
const firstStartFile = "FIRST_START"

// firstStartContent is what firstStartFile holds for a first start of
// members ids (sorted).
func firstStartContent(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return "members=" + strings.Join(s, ",") + "\n"
}

// beginEmbeddedStart runs before any node of an embedded cluster starts.
// It records that a first start is under way when no node has data yet,
// and refuses data that the nodes must not start on: some nodes with data
// and some without, other than by an interrupted first start (see
// firstStartFile). firstStart reports that the first start must be marked
// done (endFirstStart) once every node has started.
func (db *DB) beginEmbeddedStart() (firstStart bool, err error) {
	var with, without []uint64
	for _, id := range db.hosted {
		has, err := actors.HasData(db.cfg.DataDir(id))
		if err != nil {
			return false, err
		}
		if has {
			with = append(with, id)
		} else {
			without = append(without, id)
		}
	}
	path := filepath.Join(db.cfg.PersistPath, firstStartFile)
	ids := slices.Sorted(slices.Values(db.hosted))
	if len(with) == 0 {
		if err := persist.MkdirDurable(db.cfg.PersistPath); err != nil {
			return false, fmt.Errorf("raftkv: create the persist path: %w", err)
		}
		// A crash while an earlier Open wrote the file leaves its
		// temporary (see persist.WriteFileAtomic), which nothing reads.
		torn, _ := filepath.Glob(filepath.Join(db.cfg.PersistPath, "."+firstStartFile+".tmp-*"))
		for _, f := range torn {
			if err := os.Remove(f); err != nil {
				return false, fmt.Errorf("raftkv: remove a torn %s: %w", firstStartFile, err)
			}
		}
		if err := persist.WriteFileAtomic(path, []byte(firstStartContent(ids))); err != nil {
			return false, fmt.Errorf("raftkv: record the first start: %w", err)
		}
		return true, nil
	}
	got, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("raftkv: %w", err)
	}
	marked := err == nil
	switch {
	case marked && string(got) != firstStartContent(ids):
		// Starting any node now could record members other than those
		// the nodes with data recorded.
		return false, fmt.Errorf("%w: the cluster's first start was interrupted (nodes %v have data, nodes %v none); %s records that it was of %q, the configuration now has nodes %v: restore serversNum to complete it",
			actors.ErrWrongCluster, with, without, path, strings.TrimSpace(string(got)), ids)
	case marked && len(without) > 0:
		db.log.Warn("completing the cluster's first start, which was interrupted before every node had started",
			"started", with, "starting", without, "dir", db.cfg.PersistPath)
		return true, nil
	case marked:
		// The cut came after every node had data, before the marker was
		// removed (some node's own first start may be unfinished).
		return true, nil
	case len(without) == 0:
		return false, nil
	}
	return false, fmt.Errorf("%w: nodes %v have data and nodes %v have none: serversNum grew since the cluster was created (%s); an embedded cluster keeps the members it was created with: restore serversNum, or serve the nodes ('raftkv serve') and add members with 'raftkv member add'",
		actors.ErrWrongCluster, with, without, db.cfg.PersistPath)
}

// endFirstStart marks the first start done, once every node's first start
// is durable: from then on a node without data is refused.
func (db *DB) endFirstStart() error {
	if err := persist.RemoveFileDurable(filepath.Join(db.cfg.PersistPath, firstStartFile)); err != nil {
		return fmt.Errorf("raftkv: record the end of the first start: %w", err)
	}
	return nil
}
