#define _POSIX_C_SOURCE 200809L

#include "broker_ceiling.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

enum { CHANNEL = 1 };

/// State the three threads share; every field written by more than one thread is atomic or under `lock`.
typedef struct {
    const bc_options *options;
    int64_t deadline_ns;
    atomic_int ready;
    atomic_int go;
    atomic_int stop;
    pthread_mutex_t lock;
    char error[256];
    int64_t published_ns;
    atomic_int drained;
    int64_t drained_ns;
} shared_t;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/// Records the first error (`role: what`, or just `what` when `role` is NULL) and tells every thread to stop.
static void fail(shared_t *shared, const char *role, const char *what) {
    pthread_mutex_lock(&shared->lock);
    if (shared->error[0] == 0) snprintf(shared->error, sizeof shared->error, "%s%s%s", role ? role : "", role ? ": " : "", what);
    pthread_mutex_unlock(&shared->lock);
    atomic_store(&shared->stop, 1);
}

static const char *reply_text(amqp_rpc_reply_t reply, char *buffer, size_t size) {
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD || reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_bytes_t text = reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD
                ? ((amqp_connection_close_t *)reply.reply.decoded)->reply_text
                : ((amqp_channel_close_t *)reply.reply.decoded)->reply_text;
            snprintf(buffer, size, "broker closed: %.*s", (int)text.len, (const char *)text.bytes);
            return buffer;
        }
        return "server exception";
    }
    return "unknown reply";
}

static int check_reply(amqp_connection_state_t state, const char *role, const char *step, char *error, size_t size) {
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(state);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) return 0;
    char buffer[200];
    snprintf(error, size, "%s %s: %s", role, step, reply_text(reply, buffer, sizeof buffer));
    return -1;
}

/// Opens a connection with channel 1 and declares both queues durable; NULL (and `error`) on failure.
static amqp_connection_state_t open_connection(const bc_options *o, const char *role, char *error, size_t size) {
    amqp_connection_state_t state = amqp_new_connection();
    amqp_socket_t *socket = state ? amqp_tcp_socket_new(state) : NULL;
    if (!socket) {
        snprintf(error, size, "%s: out of memory", role);
        if (state) amqp_destroy_connection(state);
        return NULL;
    }
    struct timeval timeout = {10, 0};
    int status = amqp_socket_open_noblock(socket, o->host, o->port, &timeout);
    if (status != AMQP_STATUS_OK) {
        snprintf(error, size, "%s connect to %s:%d: %s", role, o->host, o->port, amqp_error_string2(status));
        amqp_destroy_connection(state);
        return NULL;
    }
    amqp_rpc_reply_t login =
        amqp_login(state, o->vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, o->user, o->password);
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
        char buffer[200];
        snprintf(error, size, "%s login: %s", role, reply_text(login, buffer, sizeof buffer));
        amqp_destroy_connection(state);
        return NULL;
    }
    amqp_channel_open(state, CHANNEL);
    if (check_reply(state, role, "channel.open", error, size) != 0) goto failed;
    amqp_table_entry_t entry = {amqp_cstring_bytes("x-queue-type"), {0}};
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = amqp_cstring_bytes("quorum");
    amqp_table_t arguments = {o->quorum ? 1 : 0, o->quorum ? &entry : NULL};
    const char *queues[2] = {o->queue_a, o->queue_b};
    for (int i = 0; i < 2; i++) {
        amqp_queue_declare(state, CHANNEL, amqp_cstring_bytes(queues[i]), 0, 1, 0, 0, arguments);
        if (check_reply(state, role, "queue.declare", error, size) != 0) goto failed;
    }
    return state;
failed:
    amqp_destroy_connection(state);
    return NULL;
}

static void close_connection(amqp_connection_state_t state) {
    amqp_channel_close(state, CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(state, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state);
}

static int buffered(amqp_connection_state_t state) {
    return amqp_frames_enqueued(state) || amqp_data_in_buffer(state);
}

/// Publisher confirms, which may arrive singly or with `multiple`, tracked as the highest tag below which all
/// are confirmed.
typedef struct {
    unsigned char *marks;
    uint64_t capacity;
    uint64_t upto;
} confirms_t;

static void confirm(confirms_t *c, uint64_t tag, int multiple) {
    if (tag > c->capacity) tag = c->capacity;
    if (multiple) {
        for (uint64_t t = c->upto + 1; t <= tag; t++) c->marks[t] = 1;
    } else {
        c->marks[tag] = 1;
    }
    while (c->upto < c->capacity && c->marks[c->upto + 1]) c->upto++;
}

/// Waits up to `wait_us` microseconds (0: only what is buffered or readable now) for one frame. 1: got one;
/// 0: timed out; -1: failed (recorded).
static int wait_frame(shared_t *shared, amqp_connection_state_t state, const char *role, amqp_frame_t *frame,
    long wait_us) {
    if (atomic_load(&shared->stop)) return -1;
    if (now_ns() > shared->deadline_ns) {
        char text[120];
        snprintf(text, sizeof text, "timed out after %d s (%d of %d drained from B)", shared->options->timeout_seconds,
            atomic_load(&shared->drained), shared->options->messages);
        fail(shared, role, text);
        return -1;
    }
    struct timeval timeout = {wait_us / 1000000, wait_us % 1000000};
    int status = amqp_simple_wait_frame_noblock(state, frame, &timeout);
    if (status == AMQP_STATUS_TIMEOUT) return 0;
    if (status != AMQP_STATUS_OK) {
        fail(shared, role, amqp_error_string2(status));
        return -1;
    }
    if (frame->frame_type == AMQP_FRAME_METHOD
        && (frame->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD
            || frame->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        amqp_channel_close_t *close = frame->payload.method.decoded;
        char text[200];
        snprintf(text, sizeof text, "broker closed the channel: %.*s", (int)close->reply_text.len,
            (const char *)close->reply_text.bytes);
        fail(shared, role, text);
        return -1;
    }
    if (frame->frame_type == AMQP_FRAME_METHOD && frame->payload.method.id == AMQP_BASIC_NACK_METHOD) {
        fail(shared, role, "the broker nacked a publish");
        return -1;
    }
    return 1;
}

/// Waits up to 100 ms for one frame; as `wait_frame`.
static int next_frame(shared_t *shared, amqp_connection_state_t state, const char *role, amqp_frame_t *frame) {
    return wait_frame(shared, state, role, frame, 100000);
}

/// Reads the content (header and body frames) that follows a basic.deliver, without copying it: a body that
/// came in one frame points into the connection's buffers (valid until amqp_maybe_release_buffers); a larger one
/// is gathered into `scratch`. 0 on success; -1 failed (recorded).
static int read_content(shared_t *shared, amqp_connection_state_t state, const char *role, amqp_bytes_t *scratch,
    amqp_bytes_t *body) {
    amqp_frame_t frame;
    int got;
    while ((got = next_frame(shared, state, role, &frame)) == 0) {}
    if (got < 0) return -1;
    if (frame.frame_type != AMQP_FRAME_HEADER) {
        fail(shared, role, "expected a content header after basic.deliver");
        return -1;
    }
    size_t size = (size_t)frame.payload.properties.body_size, have = 0;
    *body = (amqp_bytes_t){0, NULL};
    while (have < size) {
        while ((got = next_frame(shared, state, role, &frame)) == 0) {}
        if (got < 0) return -1;
        if (frame.frame_type != AMQP_FRAME_BODY) {
            fail(shared, role, "expected a content body frame");
            return -1;
        }
        amqp_bytes_t fragment = frame.payload.body_fragment;
        if (have == 0 && fragment.len == size) {
            *body = fragment;
            return 0;
        }
        if (scratch->len < size) {
            void *grown = realloc(scratch->bytes, size);
            if (!grown) {
                fail(shared, role, "out of memory");
                return -1;
            }
            *scratch = (amqp_bytes_t){size, grown};
        }
        if (fragment.len > size - have) {
            fail(shared, role, "content body longer than its header said");
            return -1;
        }
        memcpy((char *)scratch->bytes + have, fragment.bytes, fragment.len);
        have += fragment.len;
    }
    *body = (amqp_bytes_t){size, scratch->bytes};
    return 0;
}

/// Handles a basic.ack frame (a publisher confirm); returns whether it was one.
static int take_confirm(amqp_frame_t *frame, confirms_t *confirms) {
    if (frame->frame_type != AMQP_FRAME_METHOD || frame->payload.method.id != AMQP_BASIC_ACK_METHOD) return 0;
    amqp_basic_ack_t *ack = frame->payload.method.decoded;
    confirm(confirms, ack->delivery_tag, ack->multiple);
    return 1;
}

/// Corks the connection's socket while a batch of publishes is written, so that the batch leaves in full TCP
/// segments instead of one small segment per publish (rabbitmq-c sends each message on its own, and the socket
/// has TCP_NODELAY); uncorking sends the rest at once.
static void cork(amqp_connection_state_t state, int on) {
    setsockopt(amqp_get_sockfd(state), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

static amqp_basic_properties_t persistent(void) {
    amqp_basic_properties_t properties;
    memset(&properties, 0, sizeof properties);
    properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    properties.delivery_mode = 2;
    properties.content_type = amqp_cstring_bytes("application/json");
    return properties;
}

/// Marks this thread ready and waits for the start (or a failure elsewhere); 0 to go on.
static int ready_and_wait(shared_t *shared) {
    atomic_fetch_add(&shared->ready, 1);
    while (!atomic_load(&shared->go)) {
        if (atomic_load(&shared->stop)) return -1;
        sleep_ms(1);
    }
    return 0;
}

static int consume(amqp_connection_state_t state, const bc_options *o, const char *queue, const char *role,
    char *error, size_t size) {
    amqp_basic_qos(state, CHANNEL, 0, (uint16_t)o->prefetch, 0);
    if (check_reply(state, role, "basic.qos", error, size) != 0) return -1;
    amqp_basic_consume(state, CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    return check_reply(state, role, "basic.consume", error, size);
}

static void *publisher(void *argument) {
    shared_t *shared = argument;
    const bc_options *o = shared->options;
    const char *role = "publisher";
    char error[256];
    amqp_connection_state_t state = open_connection(o, role, error, sizeof error);
    if (!state) {
        fail(shared, NULL, error);
        atomic_fetch_add(&shared->ready, 1);
        return NULL;
    }
    amqp_confirm_select(state, CHANNEL);
    confirms_t confirms = {calloc((size_t)o->messages + 2, 1), (uint64_t)o->messages, 0};
    unsigned char *body = malloc((size_t)o->body_bytes);
    if (check_reply(state, role, "confirm.select", error, sizeof error) != 0 || !confirms.marks || !body) {
        fail(shared, confirms.marks && body ? NULL : role, confirms.marks && body ? error : "out of memory");
        atomic_fetch_add(&shared->ready, 1);
        goto done;
    }
    memset(body, 'x', (size_t)o->body_bytes);
    amqp_bytes_t body_bytes = {(size_t)o->body_bytes, body};
    amqp_basic_properties_t properties = persistent();
    if (ready_and_wait(shared) != 0) goto done;

    int sent = 0;
    while (sent < o->messages) {
        int count = o->messages - sent < o->publish_batch ? o->messages - sent : o->publish_batch;
        cork(state, 1);
        for (int i = 0; i < count; i++) {
            int status = amqp_basic_publish(state, CHANNEL, amqp_empty_bytes, amqp_cstring_bytes(o->queue_a), 0, 0,
                &properties, body_bytes);
            if (status != AMQP_STATUS_OK) {
                fail(shared, role, amqp_error_string2(status));
                goto done;
            }
        }
        cork(state, 0);
        sent += count;
        // Keep at most the window unconfirmed: the next batch may go once the older ones are confirmed.
        int limit = sent == o->messages ? 0 : o->publish_window - o->publish_batch;
        if (limit < 0) limit = 0;
        while ((int64_t)sent - (int64_t)confirms.upto > limit) {
            amqp_frame_t frame;
            int got = next_frame(shared, state, role, &frame);
            if (got < 0) goto done;
            if (got > 0) take_confirm(&frame, &confirms);
            amqp_maybe_release_buffers(state);
        }
    }
    shared->published_ns = now_ns();
done:
    free(confirms.marks);
    free(body);
    close_connection(state);
    return NULL;
}

/// Waits until one of the sockets is readable, up to 100 ms (a timeout is no error: the callers check the
/// deadline and the stop flag on their next read).
static void wait_readable(amqp_connection_state_t *states, int count) {
    struct pollfd fds[2];
    for (int i = 0; i < count; i++) fds[i] = (struct pollfd){amqp_get_sockfd(states[i]), POLLIN, 0};
    poll(fds, (nfds_t)count, 100);
}

/// The forwarder on two connections in one poll loop, as a router with separate consumer and publisher
/// connections: every delivery one read turn brought from A is republished to B at once (no waiting between
/// publishes, the prefetch bounds what is unconfirmed), then B's confirms are read, and A is acked with one
/// `multiple` up to the last delivery whose publish B confirmed.
static void *forwarder(void *argument) {
    shared_t *shared = argument;
    const bc_options *o = shared->options;
    const char *role = "forwarder";
    char error[256];
    amqp_connection_state_t in = open_connection(o, role, error, sizeof error);
    amqp_connection_state_t out = in ? open_connection(o, role, error, sizeof error) : NULL;
    confirms_t confirms = {calloc((size_t)o->messages + 2, 1), (uint64_t)o->messages, 0};
    uint64_t *delivery_of = calloc((size_t)o->messages + 2, sizeof(uint64_t));
    amqp_bytes_t scratch = {0, NULL};
    int ok = out != NULL;
    if (ok) amqp_confirm_select(out, CHANNEL);
    ok = ok && check_reply(out, role, "confirm.select", error, sizeof error) == 0
        && consume(in, o, o->queue_a, role, error, sizeof error) == 0;
    if (!ok || !confirms.marks || !delivery_of) {
        fail(shared, ok ? role : NULL, ok ? "out of memory" : error);
        atomic_fetch_add(&shared->ready, 1);
        goto done;
    }
    amqp_basic_properties_t properties = persistent();
    amqp_bytes_t queue_b = amqp_cstring_bytes(o->queue_b);
    if (ready_and_wait(shared) != 0) goto done;

    // Publish sequence number n forwards A's delivery `delivery_of[n]`; once B confirmed every publish up to n,
    // one `multiple` ack settles A up to that delivery.
    uint64_t published = 0, acked = 0;
    while (acked < (uint64_t)o->messages) {
        int progress = 0;
        amqp_frame_t frame;
        // Everything A's connection has now: read without waiting, publish each delivery to B at once.
        cork(out, 1);
        for (;;) {
            int got = wait_frame(shared, in, role, &frame, 0);
            if (got < 0) goto done;
            if (got == 0) break;
            progress = 1;
            if (frame.frame_type != AMQP_FRAME_METHOD || frame.payload.method.id != AMQP_BASIC_DELIVER_METHOD) continue;
            uint64_t tag = ((amqp_basic_deliver_t *)frame.payload.method.decoded)->delivery_tag;
            amqp_bytes_t body;
            if (read_content(shared, in, role, &scratch, &body) != 0) goto done;
            if (published == (uint64_t)o->messages) {
                fail(shared, role, "queue A held more messages than were published");
                goto done;
            }
            int status = amqp_basic_publish(out, CHANNEL, amqp_empty_bytes, queue_b, 0, 0, &properties, body);
            if (status != AMQP_STATUS_OK) {
                fail(shared, role, amqp_error_string2(status));
                goto done;
            }
            delivery_of[++published] = tag;
            if (!buffered(in)) break;
        }
        cork(out, 0);
        amqp_maybe_release_buffers(in);
        // B's confirms that have arrived.
        for (;;) {
            int got = wait_frame(shared, out, role, &frame, 0);
            if (got < 0) goto done;
            if (got == 0) break;
            progress = 1;
            take_confirm(&frame, &confirms);
            if (!buffered(out)) break;
        }
        amqp_maybe_release_buffers(out);
        // Every ack is work for the broker: ack a quarter window at a time, or all that is confirmed once nothing
        // forwarded is waiting for B (A sends no more until acked).
        if (confirms.upto > acked
            && (confirms.upto - acked >= (uint64_t)(o->prefetch + 3) / 4 || confirms.upto == published)) {
            int status = amqp_basic_ack(in, CHANNEL, delivery_of[confirms.upto], 1);
            if (status != AMQP_STATUS_OK) {
                fail(shared, role, amqp_error_string2(status));
                goto done;
            }
            acked = confirms.upto;
        }
        if (!progress) {
            amqp_connection_state_t both[2] = {in, out};
            wait_readable(both, 2);
        }
    }
done:
    free(confirms.marks);
    free(delivery_of);
    free(scratch.bytes);
    if (out) close_connection(out);
    if (in) close_connection(in);
    return NULL;
}

/// The drain of B: takes each delivery without copying its body, and acks with `multiple` every half prefetch.
static void *drain(void *argument) {
    shared_t *shared = argument;
    const bc_options *o = shared->options;
    const char *role = "drain";
    char error[256];
    amqp_connection_state_t state = open_connection(o, role, error, sizeof error);
    if (!state) {
        fail(shared, NULL, error);
        atomic_fetch_add(&shared->ready, 1);
        return NULL;
    }
    amqp_bytes_t scratch = {0, NULL};
    if (consume(state, o, o->queue_b, role, error, sizeof error) != 0) {
        fail(shared, NULL, error);
        atomic_fetch_add(&shared->ready, 1);
        goto done;
    }
    if (ready_and_wait(shared) != 0) goto done;

    int drained = 0, acked = 0;
    uint64_t last = 0;
    while (drained < o->messages) {
        amqp_frame_t frame;
        int got = next_frame(shared, state, role, &frame);
        if (got < 0) goto done;
        if (got > 0 && frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            last = ((amqp_basic_deliver_t *)frame.payload.method.decoded)->delivery_tag;
            amqp_bytes_t body;
            if (read_content(shared, state, role, &scratch, &body) != 0) goto done;
            drained++;
            atomic_store(&shared->drained, drained);
        }
        // Every ack is work for the broker: ack half the prefetch at a time, the last message, or what is held when
        // nothing came for 100 ms.
        if (drained > acked && (got == 0 || drained - acked >= (o->prefetch + 1) / 2 || drained == o->messages)) {
            int status = amqp_basic_ack(state, CHANNEL, last, 1);
            if (status != AMQP_STATUS_OK) {
                fail(shared, role, amqp_error_string2(status));
                goto done;
            }
            acked = drained;
        }
        if (!buffered(state)) amqp_maybe_release_buffers(state);
    }
    shared->drained_ns = now_ns();
done:
    free(scratch.bytes);
    close_connection(state);
    return NULL;
}

int bc_run(const bc_options *options, bc_result *result) {
    memset(result, 0, sizeof *result);
    if (options->messages <= 0 || options->body_bytes <= 0 || options->publish_batch <= 0 || options->prefetch <= 0
        || options->prefetch > 65535 || options->timeout_seconds <= 0) {
        snprintf(result->error, sizeof result->error, "invalid options");
        return -1;
    }
    shared_t shared;
    memset(&shared, 0, sizeof shared);
    shared.options = options;
    shared.deadline_ns = now_ns() + (int64_t)options->timeout_seconds * 1000000000;
    pthread_mutex_init(&shared.lock, NULL);
    void *(*roles[3])(void *) = {publisher, forwarder, drain};
    pthread_t threads[3];
    int started = 0;
    for (; started < 3; started++) {
        if (pthread_create(&threads[started], NULL, roles[started], &shared) != 0) {
            fail(&shared, "bc_run", "pthread_create failed");
            break;
        }
    }
    while (started == 3 && atomic_load(&shared.ready) < 3) sleep_ms(1);
    if (!atomic_load(&shared.stop)) {
        result->start_ns = now_ns();
        atomic_store(&shared.go, 1);
    }
    for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
    result->published_ns = shared.published_ns;
    result->drained_ns = shared.drained_ns;
    result->drained = atomic_load(&shared.drained);
    memcpy(result->error, shared.error, sizeof result->error);
    pthread_mutex_destroy(&shared.lock);
    return result->error[0] == 0 ? 0 : -1;
}

int bc_delete_queues(const bc_options *options, char error[256]) {
    error[0] = 0;
    amqp_connection_state_t state = open_connection(options, "delete", error, 256);
    if (!state) return -1;
    const char *queues[2] = {options->queue_a, options->queue_b};
    for (int i = 0; i < 2; i++) {
        amqp_queue_delete(state, CHANNEL, amqp_cstring_bytes(queues[i]), 0, 0);
        if (check_reply(state, "delete", "queue.delete", error, 256) != 0) {
            amqp_destroy_connection(state);
            return -1;
        }
    }
    close_connection(state);
    return 0;
}
