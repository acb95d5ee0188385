// Command gobench is gocontext's Go twin: it runs the workloads of
// benches/context.rs on Go's own context package and prints one line per
// workload, "go\t<name>\t<nanoseconds>", in the format the Rust side prints in
// its compare mode, so that benches/compare.sh can line the two up.
//
// Every throughput workload is calibrated to take about -target per
// repetition, repeated -reps times, and the median ns/op is printed. Latency
// workloads print the 50th and 99th percentile of all their samples.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	reps    = flag.Int("reps", 5, "repetitions per workload; the median is printed")
	target  = flag.Duration("target", 50*time.Millisecond, "time one repetition should take")
	filter  = flag.String("filter", "", "run only workloads whose name contains this (alternatives separated by |)")
	samples = flag.Int("samples", 2000, "samples per latency workload")
	threads = flag.Int("threads", runtime.NumCPU(), "the most threads of the scaling rows (4, 8, 16 run up to it)")
	memory  = flag.Bool("memory", false, "print heap bytes per live context instead of timings")
)

// threadCounts are the thread counts of the scaling rows: 1 and 2 always,
// 4, 8 and 16 up to -threads (the Rust side's GOCONTEXT_BENCH_THREADS).
func threadCounts() []int {
	var ts []int
	for _, t := range []int{1, 2, 4, 8, 16} {
		if t <= 2 || t <= *threads {
			ts = append(ts, t)
		}
	}
	return ts
}

// sink keeps the compiler from discarding results.
var sink atomic.Uint64

// A run executes n operations and returns the time they took (setup that
// must not count is done outside the returned duration).
type run func(n int) time.Duration

// wanted: -filter is a list of substrings separated by "|"; a name that
// contains any of them runs.
func wanted(name string) bool {
	for _, f := range strings.Split(*filter, "|") {
		if strings.Contains(name, f) {
			return true
		}
	}
	return false
}

func emit(name string, ns float64) {
	fmt.Printf("go\t%s\t%.3f\n", name, ns)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// throughput calibrates n so that one repetition takes about -target, then
// reports the median over -reps repetitions of elapsed/(n*per).
func throughput(name string, per float64, f run) {
	if !wanted(name) {
		return
	}
	n := 1
	for {
		d := f(n)
		if d >= *target/10 || n >= 1<<30 {
			scaled := float64(n) * float64(*target) / float64(d+1)
			n = int(scaled)
			if n < 1 {
				n = 1
			}
			break
		}
		n *= 4
	}
	var xs []float64
	for i := 0; i < *reps; i++ {
		d := f(n)
		xs = append(xs, float64(d.Nanoseconds())/(float64(n)*per))
	}
	emit(name, median(xs))
}

// percentiles reports p50 and p99 of the given samples.
func percentiles(name string, xs []float64) {
	sort.Float64s(xs)
	p := func(q float64) float64 { return xs[int(q*float64(len(xs)-1))] }
	emit(name+"/p50", p(0.50))
	emit(name+"/p99", p(0.99))
}

// parallel runs body(ops) on `threads` goroutines splitting n operations and
// returns the wall time from the moment all of them are ready.
func parallel(threads, n int, body func(ops int)) time.Duration {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(threads)
	done.Add(threads)
	for t := 0; t < threads; t++ {
		ops := n / threads
		if t == 0 {
			ops += n % threads
		}
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			body(ops)
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	return time.Since(t0)
}

func checkCanceled() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	throughput("check_canceled/err", 1, func(n int) time.Duration {
		var hits uint64
		t0 := time.Now()
		for i := 0; i < n; i++ {
			if ctx.Err() != nil {
				hits++
			}
		}
		d := time.Since(t0)
		sink.Add(hits)
		return d
	})
	// Go has no is_done(); the idiomatic non-blocking check is a select.
	throughput("check_canceled/is_done", 1, func(n int) time.Duration {
		var hits uint64
		t0 := time.Now()
		for i := 0; i < n; i++ {
			select {
			case <-ctx.Done():
				hits++
			default:
			}
		}
		d := time.Since(t0)
		sink.Add(hits)
		return d
	})
}

func contextCancelDone() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	throughput("context_cancel_done", 1, func(n int) time.Duration {
		return parallel(2, n, func(ops int) {
			var hits uint64
			for i := 0; i < ops; i++ {
				select {
				case <-ctx.Done():
					hits++
				default:
				}
			}
			sink.Add(hits)
		})
	})
}

func busyWork() uint64 {
	x := uint64(1)
	for i := 0; i < 100; i++ {
		x /= x + 1
	}
	return x
}

func commonParentCancel() {
	root, cancelRoot := context.WithCancel(context.Background())
	defer cancelRoot()
	for _, busy := range []bool{false, true} {
		name := "common_parent_cancel/plain"
		if busy {
			name = "common_parent_cancel/busy_work"
		}
		throughput(name, 1, func(n int) time.Duration {
			return parallel(2, n, func(ops int) {
				var x uint64
				for i := 0; i < ops; i++ {
					_, cancel := context.WithCancel(root)
					if busy {
						x += busyWork()
					}
					cancel()
				}
				sink.Add(x)
			})
		})
	}
}

// chain derives depth contexts, each from the previous one, and returns the
// last. The cancel functions are dropped, as in Go's own benchmark.
func chain(root context.Context, depth int) context.Context {
	ctx := root
	for i := 0; i < depth; i++ {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		_ = cancel // dropped on purpose, as in Go's BenchmarkCancelTree
	}
	return ctx
}

func cancelTree() {
	for _, depth := range []int{1, 10, 100, 1000} {
		throughput(fmt.Sprintf("cancel_tree/depth=%d/root=background", depth), 1, func(n int) time.Duration {
			t0 := time.Now()
			for i := 0; i < n; i++ {
				leaf := chain(context.Background(), depth)
				if leaf.Err() != nil {
					sink.Add(1)
				}
			}
			return time.Since(t0)
		})
		throughput(fmt.Sprintf("cancel_tree/depth=%d/root=open", depth), 1, func(n int) time.Duration {
			t0 := time.Now()
			for i := 0; i < n; i++ {
				root, cancel := context.WithCancel(context.Background())
				leaf := chain(root, depth)
				cancel()
				if leaf.Err() != nil {
					sink.Add(1)
				}
			}
			return time.Since(t0)
		})
		throughput(fmt.Sprintf("cancel_tree/depth=%d/root=closed", depth), 1, func(n int) time.Duration {
			t0 := time.Now()
			for i := 0; i < n; i++ {
				root, cancel := context.WithCancel(context.Background())
				cancel()
				leaf := chain(root, depth)
				if leaf.Err() != nil {
					sink.Add(1)
				}
			}
			return time.Since(t0)
		})
	}
}

func withTimeout() {
	root := context.Background()
	for _, pending := range []int{40, 4000, 400000} {
		counts := []int{1, 2}
		if pending == 4000 {
			counts = threadCounts()
		}
		for _, threads := range counts {
			name := fmt.Sprintf("with_timeout/concurrency=%d/threads=%d", pending, threads)
			if !wanted(name) {
				continue
			}
			cancels := make([]context.CancelFunc, 0, pending)
			for i := 0; i < pending; i++ {
				_, c := context.WithTimeout(root, time.Hour)
				cancels = append(cancels, c)
			}
			throughput(name, 1, func(n int) time.Duration {
				return parallel(threads, n, func(ops int) {
					for i := 0; i < ops; i++ {
						_, cancel := context.WithTimeout(root, time.Hour)
						cancel()
					}
				})
			})
			for _, c := range cancels {
				c()
			}
		}
	}
}

type valueKey int

func deepValue() {
	for _, depth := range []int{10, 20, 30, 50, 100} {
		ctx := context.Background()
		for i := 0; i < depth; i++ {
			ctx = context.WithValue(ctx, valueKey(i), i)
		}
		throughput(fmt.Sprintf("deep_value/depth=%d", depth), 1, func(n int) time.Duration {
			var hits uint64
			t0 := time.Now()
			for i := 0; i < n; i++ {
				if ctx.Value(valueKey(-1)) != nil {
					hits++
				}
			}
			d := time.Since(t0)
			sink.Add(hits)
			return d
		})
	}
}

func fanoutCancel() {
	for _, c := range []struct {
		name string
		n    int
	}{{"1k", 1000}, {"10k", 10000}, {"100k", 100000}} {
		children := make([]context.Context, c.n)
		throughput("fanout_cancel/"+c.name, float64(c.n), func(n int) time.Duration {
			var total time.Duration
			for i := 0; i < n; i++ {
				parent, cancel := context.WithCancel(context.Background())
				for j := range children {
					var drop context.CancelFunc
					children[j], drop = context.WithCancel(parent)
					_ = drop // the parent's cancel is what is measured
				}
				t0 := time.Now()
				cancel()
				total += time.Since(t0)
			}
			return total
		})
		clear(children)
	}
}

// spin busy-waits for d, long enough for a waiter to have gone to sleep.
func spin(d time.Duration) {
	t0 := time.Now()
	for time.Since(t0) < d {
	}
}

// wakeLatency measures the time from cancel() to the waiting goroutine
// running again. Go has one kind of waiter, a goroutine blocked on Done();
// it is measured under both of the Rust side's names.
func wakeLatency(name string) {
	if !wanted(name) {
		return
	}
	base := time.Now()
	xs := make([]float64, 0, *samples)
	for i := 0; i < *samples; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		var ready atomic.Bool
		woke := make(chan int64, 1)
		go func() {
			ready.Store(true)
			<-ctx.Done()
			woke <- int64(time.Since(base))
		}()
		for !ready.Load() {
			runtime.Gosched()
		}
		spin(30 * time.Microsecond)
		t0 := int64(time.Since(base))
		cancel()
		t1 := <-woke
		xs = append(xs, float64(t1-t0))
	}
	percentiles(name, xs)
}

type requestKey struct{}

// serverRequest: a deadline under the server's open root, a value, three
// checks, one lookup, cancel.
func serverRequest() {
	server, cancelServer := context.WithCancel(context.Background())
	defer cancelServer()
	for _, threads := range threadCounts() {
		throughput(fmt.Sprintf("server_request/threads=%d", threads), 1, func(n int) time.Duration {
			return parallel(threads, n, func(ops int) {
				var x uint64
				for i := 0; i < ops; i++ {
					ctx, cancel := context.WithTimeout(server, 5*time.Second)
					ctx = context.WithValue(ctx, requestKey{}, uint64(i))
					for j := 0; j < 3; j++ {
						if ctx.Err() != nil {
							x++
						}
					}
					if v, ok := ctx.Value(requestKey{}).(uint64); ok {
						x += v
					}
					cancel()
				}
				sink.Add(x)
			})
		})
	}
}

// memoryPerContext prints the heap bytes and allocations per live context,
// from runtime.MemStats around 100,000 contexts kept alive under an open
// parent, in the format of benches/memory.rs.
func memoryPerContext() {
	const n = 100000
	root, cancelRoot := context.WithCancel(context.Background())
	defer cancelRoot()
	ctxs := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	measure := func(name string, derive func(i int) (context.Context, context.CancelFunc)) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < n; i++ {
			ctxs[i], cancels[i] = derive(i)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		emit("memory/"+name+"/bytes", float64(after.HeapAlloc-before.HeapAlloc)/n)
		emit("memory/"+name+"/allocs", float64(after.Mallocs-before.Mallocs)/n)
		for i := range cancels {
			if cancels[i] != nil {
				cancels[i]()
			}
		}
		clear(ctxs)
		clear(cancels)
	}
	// with_timeout last: its stopped timers leave the runtime's timer heaps
	// lazily, and would be freed inside a later measurement.
	// A uint64 above 255 is boxed in the interface (8 bytes more), as a
	// request id would be.
	measure("with_value", func(i int) (context.Context, context.CancelFunc) {
		return context.WithValue(root, requestKey{}, uint64(i)+1<<32), nil
	})
	measure("with_cancel", func(int) (context.Context, context.CancelFunc) {
		return context.WithCancel(root)
	})
	measure("with_timeout", func(int) (context.Context, context.CancelFunc) {
		return context.WithTimeout(root, time.Hour)
	})
}

func timerArmCancel() {
	root := context.Background()
	throughput("timer/arm_cancel", 1, func(n int) time.Duration {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			_, cancel := context.WithTimeout(root, time.Hour)
			cancel()
		}
		return time.Since(t0)
	})
}

// firingLateness arms 10,000 timeouts due at random points within the next
// second and records, for each, how long after its deadline it fired.
func firingLateness() {
	const name = "timer/firing_lateness"
	if !wanted(name) {
		return
	}
	const count = 10000
	rng := rand.New(rand.NewSource(1))
	late := make([]float64, count)
	var wg sync.WaitGroup
	wg.Add(count)
	var cancels []context.CancelFunc
	for i := 0; i < count; i++ {
		d := time.Duration(rng.Int63n(int64(time.Second))) + time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), d)
		cancels = append(cancels, cancel)
		deadline, _ := ctx.Deadline()
		i := i
		context.AfterFunc(ctx, func() {
			late[i] = float64(time.Since(deadline))
			wg.Done()
		})
	}
	wg.Wait()
	for _, c := range cancels {
		c()
	}
	percentiles(name, late)
}

func main() {
	flag.Parse()
	fmt.Printf("# go\t%s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	if *memory {
		memoryPerContext()
		return
	}
	checkCanceled()
	contextCancelDone()
	commonParentCancel()
	cancelTree()
	deepValue()
	fanoutCancel()
	wakeLatency("wake_latency/async")
	wakeLatency("wake_latency/blocking")
	// The deadline workloads last, in the same order as the Rust side.
	withTimeout()
	serverRequest()
	timerArmCancel()
	firingLateness()
	os.Stdout.Sync()
}
