// A franz-go program driven by tests/compat/test_other_languages.py: one mode per run,
// results on stdout one per line, exit status 1 on any error.
//
// Security from the environment, when set: NERVE_SASL_MECHANISM (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) with NERVE_SASL_USERNAME and NERVE_SASL_PASSWORD; NERVE_TLS_CA turns TLS on,
// NERVE_TLS_CERT and NERVE_TLS_KEY add a client certificate.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

// newClient is kgo.NewClient with the seed broker and the security the environment asks for.
func newClient(bootstrap string, opts ...kgo.Opt) (*kgo.Client, error) {
	opts = append([]kgo.Opt{kgo.SeedBrokers(bootstrap)}, opts...)
	if ca := os.Getenv("NERVE_TLS_CA"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		config := &tls.Config{RootCAs: x509.NewCertPool()}
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", ca)
		}
		if cert := os.Getenv("NERVE_TLS_CERT"); cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, os.Getenv("NERVE_TLS_KEY"))
			if err != nil {
				return nil, err
			}
			config.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(config))
	}
	user, pass := os.Getenv("NERVE_SASL_USERNAME"), os.Getenv("NERVE_SASL_PASSWORD")
	switch mechanism := os.Getenv("NERVE_SASL_MECHANISM"); mechanism {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("unknown SASL mechanism %q", mechanism)
	}
	return kgo.NewClient(opts...)
}

func main() {
	mode, bootstrap := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch mode {
	case "admin":
		client, err := newClient(bootstrap)
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
		client, err := newClient(bootstrap, kgo.DefaultProduceTopic(os.Args[3]))
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
		client, err := newClient(
			bootstrap,
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
		client, err := newClient(
			bootstrap,
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
