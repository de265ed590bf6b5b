// metadb rewrites containerd's metadata database (a bbolt file) so that importing the same
// images twice gives the same bytes: every createdat/updatedat value becomes one fixed time,
// and the whole database is copied, bucket by bucket and key by key in order, into a fresh
// file (so the page layout no longer depends on the order and timing of the writes and
// garbage collections that made the original). kindred runs it on the store it preloads
// into node images.
//
//	metadb DB
package main

import (
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: metadb DB")
		os.Exit(2)
	}
	if err := rewrite(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "metadb:", err)
		os.Exit(1)
	}
}

func rewrite(path string) error {
	fixed, err := time.Unix(0, 0).UTC().MarshalBinary()
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	in, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer in.Close()
	var buckets []bucket
	err = in.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return collect(b, [][]byte{name}, fixed, &buckets)
		})
	})
	if err != nil {
		return err
	}
	tmp := path + ".rewritten"
	os.Remove(tmp)
	out, err := bolt.Open(tmp, info.Mode().Perm(), &bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	for _, b := range buckets {
		if err = out.Update(b.write); err != nil {
			break
		}
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// One bucket of the database: where it is, its sequence and its keys (not its sub-buckets).
type bucket struct {
	path     [][]byte
	sequence uint64
	keys     [][2][]byte
}

// collect lists b and every bucket under it, parents first, each in key order, with the
// timestamps replaced.
func collect(b *bolt.Bucket, path [][]byte, fixed []byte, out *[]bucket) error {
	*out = append(*out, bucket{path: path, sequence: b.Sequence()})
	this := len(*out) - 1
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			child := append(append([][]byte{}, path...), append([]byte{}, k...))
			return collect(b.Bucket(k), child, fixed, out)
		}
		if string(k) == "createdat" || string(k) == "updatedat" {
			v = fixed
		}
		(*out)[this].keys = append((*out)[this].keys, [2][]byte{append([]byte{}, k...), append([]byte{}, v...)})
		return nil
	})
}

// write makes the bucket (and its parents, if new) and puts its keys. One bucket per
// transaction: bbolt writes the buckets a transaction touched in Go map order, which is
// random, so a transaction that touches one bucket path writes the same pages every time.
func (b bucket) write(tx *bolt.Tx) error {
	cur, err := tx.CreateBucketIfNotExists(b.path[0])
	if err != nil {
		return err
	}
	for _, name := range b.path[1:] {
		if cur, err = cur.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if err := cur.SetSequence(b.sequence); err != nil {
		return err
	}
	for _, kv := range b.keys {
		if err := cur.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}
