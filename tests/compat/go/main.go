// A franz-go program driven by tests/compat/test_other_languages.py: one mode per run,
// results on stdout one per line, exit status 1 on any error.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

func main() {
	mode, bootstrap := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch mode {
	case "admin":
		client, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
		if err != nil {
			fail(err)
		}
		defer client.Close()
		admin := kadm.NewClient(client)
		created, err := admin.CreateTopics(ctx, 3, 1, nil, os.Args[3])
		if err != nil {
			fail(err)
		}
		for _, t := range created {
			if t.Err != nil {
				fail(t.Err)
			}
		}
		topics, err := admin.ListTopics(ctx, os.Args[3])
		if err != nil {
			fail(err)
		}
		fmt.Println("partitions", len(topics[os.Args[3]].Partitions))
	case "produce":
		count, _ := strconv.Atoi(os.Args[4])
		// franz-go's producer is idempotent by default.
		client, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.DefaultProduceTopic(os.Args[3]))
		if err != nil {
			fail(err)
		}
		defer client.Close()
		for i := 0; i < count; i++ {
			record := &kgo.Record{
				Key:     []byte(fmt.Sprintf("k%d", i%5)),
				Value:   []byte(fmt.Sprintf("v%d", i)),
				Headers: []kgo.RecordHeader{{Key: "lang", Value: []byte("go")}},
			}
			client.Produce(ctx, record, func(_ *kgo.Record, err error) {
				if err != nil {
					fail(err)
				}
			})
		}
		if err := client.Flush(ctx); err != nil {
			fail(err)
		}
		fmt.Println("produced", count)
	case "consume":
		count, _ := strconv.Atoi(os.Args[5])
		client, err := kgo.NewClient(
			kgo.SeedBrokers(bootstrap),
			kgo.ConsumeTopics(os.Args[3]),
			kgo.ConsumerGroup(os.Args[4]),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.DisableAutoCommit(),
		)
		if err != nil {
			fail(err)
		}
		defer client.Close()
		var values []string
		for len(values) < count {
			fetches := client.PollFetches(ctx)
			if errs := fetches.Errors(); len(errs) > 0 {
				fail(errs[0].Err)
			}
			fetches.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
		}
		if err := client.CommitUncommittedOffsets(ctx); err != nil {
			fail(err)
		}
		sort.Strings(values)
		for _, v := range values {
			fmt.Println("record", v)
		}
		fmt.Println("committed", len(values))
	case "transact":
		client, err := kgo.NewClient(
			kgo.SeedBrokers(bootstrap),
			kgo.DefaultProduceTopic(os.Args[3]),
			kgo.TransactionalID(os.Args[4]),
		)
		if err != nil {
			fail(err)
		}
		defer client.Close()
		for _, commit := range []bool{true, false} {
			if err := client.BeginTransaction(); err != nil {
				fail(err)
			}
			prefix, n := "committed", 3
			if !commit {
				prefix, n = "aborted", 2
			}
			for i := 0; i < n; i++ {
				value := []byte(fmt.Sprintf("%s-%d", prefix, i))
				if err := client.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
					fail(err)
				}
			}
			if err := client.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
				fail(err)
			}
		}
		fmt.Println("transactions done")
	default:
		fail(fmt.Errorf("unknown mode %q", mode))
	}
}
