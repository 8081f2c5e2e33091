// PerfTest-style baseline in Go (amqp091-go): the reference client.
//
// Like RabbitMQ's PerfTest with one producer and one consumer: the producer
// publishes persistent messages with publisher confirms, keeping up to
// -window unconfirmed; the consumer (its own connection, prefetch -prefetch)
// acks every delivery (PerfTest's default; -ack-every N acks with one
// multiple ack per N). Modes: "together" (both at once; rate = events /
// (first publish .. last ack)) and "publish" (producer alone; rate = events /
// (first publish .. last confirm)). Prints one RESULT line as the Python
// scripts do, with the process's CPU seconds over the timed interval.
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o perftest .
//	./perftest -hub <hub> -events 20000 -mode together
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	user := float64(usage.Utime.Sec) + float64(usage.Utime.Usec)/1e6
	system := float64(usage.Stime.Sec) + float64(usage.Stime.Usec)/1e6
	return user + system
}

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func dial(url string) (*amqp.Connection, *amqp.Channel) {
	conn, err := amqp.Dial(url)
	if err != nil {
		log.Fatalf("connect: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		log.Fatalf("channel: %v", err)
	}
	return conn, ch
}

// consume acks `events` deliveries; returns when the last ack is sent.
func consume(ch *amqp.Channel, queue string, events, prefetch, ackEvery int, ready chan<- struct{}) time.Time {
	if err := ch.Qos(prefetch, 0, false); err != nil {
		log.Fatalf("qos: %v", err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		log.Fatalf("consume: %v", err)
	}
	close(ready)
	received := 0
	for d := range deliveries {
		received++
		if ackEvery <= 1 {
			d.Ack(false)
		} else if received%ackEvery == 0 || received == events {
			d.Ack(true)
		}
		if received == events {
			break
		}
	}
	return time.Now()
}

// publish sends `events` messages keeping up to `window` unconfirmed; returns when all are confirmed.
func publish(ch *amqp.Channel, exchange, key string, body []byte, events, window int) time.Time {
	if err := ch.Confirm(false); err != nil {
		log.Fatalf("confirm.select: %v", err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+1))
	msg := amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body}
	sent, confirmed, outstanding := 0, 0, 0
	settle := func(c amqp.Confirmation) {
		if !c.Ack {
			log.Fatalf("nack for %d", c.DeliveryTag)
		}
		confirmed++
		outstanding--
	}
	for sent < events {
		for outstanding >= window {
			settle(<-confirms)
		}
		if err := ch.Publish(exchange, key, false, false, msg); err != nil {
			log.Fatalf("publish: %v", err)
		}
		sent++
		outstanding++
	}
	for confirmed < events {
		settle(<-confirms)
	}
	return time.Now()
}

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "broker URL")
	hub := flag.String("hub", "", "hub (exchange) declared by the suite; its queue is <hub>.sink")
	key := flag.String("routing-key", "bench.perf", "routing key")
	events := flag.Int("events", 20000, "messages in this run")
	window := flag.Int("window", 1000, "unconfirmed messages in flight")
	prefetch := flag.Int("prefetch", 500, "consumer prefetch")
	ackEvery := flag.Int("ack-every", 1, "deliveries per ack (1: ack each, as PerfTest)")
	mode := flag.String("mode", "together", "together or publish")
	body := flag.String("body", "{}", "message body")
	flag.Parse()
	if *hub == "" {
		log.Fatal("-hub is required")
	}
	queue := *hub + ".sink"

	pubConn, pubCh := dial(*url)
	defer pubConn.Close()
	var ackDone chan time.Time
	if *mode == "together" {
		conConn, conCh := dial(*url)
		defer conConn.Close()
		ready := make(chan struct{})
		ackDone = make(chan time.Time, 1)
		go func() { ackDone <- consume(conCh, queue, *events, *prefetch, *ackEvery, ready) }()
		<-ready
	}
	cpu0 := cpuSeconds()
	first := time.Now()
	last := publish(pubCh, *hub, *key, []byte(*body), *events, *window)
	what := fmt.Sprintf("go amqp091 publish window %d", *window)
	if ackDone != nil {
		last = <-ackDone
		what = fmt.Sprintf("go amqp091 perftest (window %d, prefetch %d, ack every %d)", *window, *prefetch, *ackEvery)
	}
	seconds := last.Sub(first).Seconds()
	result := map[string]interface{}{
		"what": what, "events": *events, "seconds": seconds, "rate": float64(*events) / seconds,
		"first": epoch(first), "last": epoch(last), "cpu_s": cpuSeconds() - cpu0,
	}
	out, _ := json.Marshal(result)
	fmt.Fprintf(os.Stdout, "RESULT %s\n", out)
}
