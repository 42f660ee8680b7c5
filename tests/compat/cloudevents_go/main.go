// CloudEvents' Go SDK (sdk-go v2, its Kafka binding on sarama) against nerve, driven by
// tests/compat/test_cloudevents_sdks.py:
//
//	cloudevents read BOOTSTRAP TOPIC COUNT
//	    reads COUNT records as the SDK reads them and prints one JSON line each: the content
//	    mode the SDK saw, the record key, the validated event (the SDK's own JSON form) and
//	    its data as the SDK holds it (base64)
//	cloudevents send BOOTSTRAP TOPIC binary|structured ID KEY DATA
//	    sends an event the SDK makes (type sdk.orders, source /sdk-go, JSON DATA, an
//	    extension) in that content mode
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
)

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0 // record headers need 0.11 or later
	c.ClientID = "nerve-compat-cloudevents"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	return c
}

func read(bootstrap, topic string, count int) error {
	consumer, err := sarama.NewConsumer([]string{bootstrap}, config())
	if err != nil {
		return err
	}
	defer consumer.Close()
	partitions, err := consumer.Partitions(topic)
	if err != nil {
		return err
	}
	messages := make(chan *sarama.ConsumerMessage)
	for _, partition := range partitions {
		pc, err := consumer.ConsumePartition(topic, partition, sarama.OffsetOldest)
		if err != nil {
			return err
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				messages <- m
			}
		}()
	}
	deadline := time.After(60 * time.Second)
	for i := 0; i < count; i++ {
		select {
		case m := <-messages:
			message := kafka_sarama.NewMessageFromConsumerMessage(m)
			encoding := message.ReadEncoding()
			event, err := binding.ToEvent(context.Background(), message)
			if err != nil {
				return fmt.Errorf("%s[%d]@%d: %w", topic, m.Partition, m.Offset, err)
			}
			if err := event.Validate(); err != nil {
				return fmt.Errorf("%s[%d]@%d is not valid: %w", topic, m.Partition, m.Offset, err)
			}
			line, err := json.Marshal(map[string]any{
				"encoding": encoding.String(),
				"key":      string(m.Key),
				"event":    event,
				"data":     base64.StdEncoding.EncodeToString(event.Data()),
			})
			if err != nil {
				return err
			}
			fmt.Println(string(line))
		case <-deadline:
			return fmt.Errorf("%d of %d records of %s in 60 s", i, count, topic)
		}
	}
	return nil
}

func send(bootstrap, topic, mode, id, key, data string) error {
	sender, err := kafka_sarama.NewSender([]string{bootstrap}, config(), topic)
	if err != nil {
		return err
	}
	defer sender.Close(context.Background())
	client, err := cloudevents.NewClient(sender, cloudevents.WithTimeNow())
	if err != nil {
		return err
	}
	event := cloudevents.NewEvent()
	event.SetID(id)
	event.SetSource("/sdk-go")
	event.SetType("sdk.orders")
	event.SetExtension("tenant", "acme")
	if err := event.SetData(cloudevents.ApplicationJSON, json.RawMessage(data)); err != nil {
		return err
	}
	ctx := kafka_sarama.WithMessageKey(context.Background(), sarama.StringEncoder(key))
	if mode == "structured" {
		ctx = binding.WithForceStructured(ctx)
	} else {
		ctx = binding.WithForceBinary(ctx)
	}
	if result := client.Send(ctx, event); cloudevents.IsUndelivered(result) {
		return fmt.Errorf("not delivered: %w", result)
	}
	fmt.Println("sent", id)
	return nil
}

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) == 4 && args[0] == "read":
		count, convErr := strconv.Atoi(args[3])
		if convErr != nil {
			err = convErr
			break
		}
		err = read(args[1], args[2], count)
	case len(args) == 7 && args[0] == "send":
		err = send(args[1], args[2], args[3], args[4], args[5], args[6])
	default:
		err = fmt.Errorf("usage: read BOOTSTRAP TOPIC COUNT | send BOOTSTRAP TOPIC MODE ID KEY DATA")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
