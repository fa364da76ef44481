// The broker's own two-queue ceiling, measured with rabbitmq-c alone on three threads (no Swift runtime, no
// Messaging module): a publisher sends confirmed batches to queue A, a forwarder republishes A to B inside a
// confirm window and acks A with `multiple` once B confirmed, and a drain consumes B with `multiple` acks.
// Persistent messages, durable queues.
#ifndef BROKER_CEILING_H
#define BROKER_CEILING_H

#include <stdint.h>

/// What to run against.
typedef struct {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *vhost;
    /// The two queues; declared durable (and deleted by bc_delete_queues).
    const char *queue_a;
    const char *queue_b;
    /// Non-zero: declare them with `x-queue-type: quorum`.
    int quorum;
    int messages;
    int body_bytes;
    /// Messages per batch published to A.
    int publish_batch;
    /// Most messages published to A and not yet confirmed.
    int publish_window;
    /// basic.qos of both consumers: the forwarder's confirm window.
    int prefetch;
    /// The whole run fails after this many seconds.
    int timeout_seconds;
} bc_options;

/// What a run measured; times are CLOCK_MONOTONIC nanoseconds.
typedef struct {
    int64_t start_ns;
    /// When the last message published to A was confirmed.
    int64_t published_ns;
    /// When the drain took the last message from B.
    int64_t drained_ns;
    int drained;
    /// Empty on success.
    char error[256];
} bc_result;

/// Runs the three threads until every message went through A and B, or an error or the timeout. 0 on success.
int bc_run(const bc_options *options, bc_result *result);

/// Deletes both queues (whatever they hold). 0 on success; otherwise `error` says why.
int bc_delete_queues(const bc_options *options, char error[256]);

#endif
