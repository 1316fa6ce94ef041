package raftkv

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks of the embedded 3-node cluster: real Badger with fsync, every
// write replicated to a quorum. Run with
//
//	go test -run '^$' -bench . -benchtime 5s
//
// Each reports ops/s and p50/p99 latency per caller count.

var benchCallers = []int{1, 16, 64}

func BenchmarkPut(b *testing.B) {
	for _, c := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", c), func(b *testing.B) {
			db := openTest(b, testConfig(b, 3))
			defer db.Close()
			value := make([]byte, 256)
			runBench(b, c, func(ctx context.Context, i int) error {
				return db.Put(ctx, fmt.Sprintf("k%06d", i%10000), value)
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	for _, c := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", c), func(b *testing.B) {
			db := openTest(b, testConfig(b, 3))
			defer db.Close()
			ctx := context.Background()
			value := make([]byte, 256)
			for i := 0; i < 1000; i++ {
				if err := db.Put(ctx, fmt.Sprintf("k%06d", i), value); err != nil {
					b.Fatal(err)
				}
			}
			runBench(b, c, func(ctx context.Context, i int) error {
				_, err := db.Get(ctx, fmt.Sprintf("k%06d", i%1000))
				return err
			})
		})
	}
}

// runBench spreads b.N calls of op over callers goroutines and reports
// throughput and latency percentiles.
func runBench(b *testing.B, callers int, op func(ctx context.Context, i int) error) {
	ctx := context.Background()
	// Warm up: a leader is elected and the path is hot.
	for i := 0; i < 50; i++ {
		if err := op(ctx, i); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	lat := make([][]time.Duration, callers)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(ctx, i); err != nil {
					failed.Store(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, ok := failed.Load().(error); ok {
		b.Fatalf("operation failed: %v", err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
