import Common
import Foundation
import Logging
import Messaging
import Metrics
import ServiceLifecycle
import ServiceRuntime
import Synchronization

/// Publishes committed outbox rows to `queue_dispatch`, oldest position first, and marks them sent only after the
/// broker confirmed them. A row whose publish fails stays pending and is published again (consumers absorb
/// the duplicate by its event id and version).
///
/// Only one relay publishes from an outbox at a time (`Outbox.whileRelaying`): with several user-service instances on
/// one PostgreSQL database, the others wait and take over when it stops or dies. `isRelaying` says whether this one
/// holds the turn (`/readyz` shows it).
///
/// Rows are read by "not yet marked sent"; those this relay published and will mark are left out of what it reads.
/// A position watermark (read only after the last published position) is used only where the outbox's positions
/// follow commit order (SQLite); elsewhere it would skip a row whose transaction committed after a later one's.
///
/// Marking rows sent is lazy: the relay remembers in memory which rows the broker confirmed, and writes the
/// marks every `markInterval` in one transaction (usually sharing the group commit of new requests) instead of
/// one extra fsync per batch. A crash before the marks are written only means those events are published again.
///
/// Metrics: `outbox_backlog` (rows waiting; set whenever the relay looks at the outbox, which it does on every
/// commit and on every retry while the broker is away) and `outbox_publish_duration_seconds` (from
/// handing a batch to the publisher to the broker's confirm of all of it).
final class OutboxRelay: Service, Sendable {
    /// Rows published per batch: one `publish` call, pipelined inside the publisher's confirm window.
    static let batchSize = 1_000
    /// How often confirmed rows are marked sent in the database.
    static let markInterval = Duration.milliseconds(200)

    private let outbox: any Outbox
    private let publisher: Publisher
    private let logger: Logger
    private let backlog = Gauge(label: "outbox_backlog")
    private let publishDuration = Metrics.Timer(label: "outbox_publish_duration_seconds")
    /// Rows the broker confirmed that are not marked in the database yet, and those whose marks are being written.
    /// Both are left out of what the relay reads.
    private let progress = Mutex<(unmarked: Set<Int64>, marking: Set<Int64>)>(([], []))
    private let relaying = Atomic<Bool>(false)
    /// The highest position published and confirmed while this relay held the turn; used only where positions follow
    /// commit order.
    private let published = Mutex<Int64?>(nil)

    init(outbox: any Outbox, publisher: Publisher, logger: Logger) {
        self.outbox = outbox
        self.publisher = publisher
        self.logger = logger
    }

    /// Whether this relay holds the outbox's turn and publishes.
    var isRelaying: Bool { relaying.load(ordering: .relaxed) }

    func run() async throws {
        try await outbox.whileRelaying { commits in await self.relay(commits) }
    }

    /// Publishes while this relay holds the turn: rows left by an earlier process first, then new rows as their
    /// transactions commit, until graceful shutdown (or cancellation, when the turn is lost).
    private func relay(_ commits: AsyncStream<Void>) async {
        relaying.store(true, ordering: .relaxed)
        defer { relaying.store(false, ordering: .relaxed) }
        published.withLock { $0 = nil }  // a new turn reads every unsent row first
        logger.info("outbox relay started: this instance publishes the outbox")
        let (markWakeups, markWake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.markPeriodically(markWakeups) }
            var commits = commits.cancelOnGracefulShutdown().makeAsyncIterator()
            repeat {
                await drain(markWake: markWake)
            } while await commits.next() != nil
            group.cancelAll()
        }
        // Shutting down: publish what the last requests committed, if the broker is there to take it. A relay
        // that lost its turn (cancelled) leaves that to the next one.
        if !Task.isCancelled && publisher.isConnected {
            await drain(retrying: false, markWake: markWake)
        }
        await markConfirmed()
    }

    /// Publishes pending rows until none is left (or, with `retrying`, until cancelled).
    ///
    /// A read that returned fewer rows than it asked for saw every row committed before it: once those are
    /// published the drain ends, and a later commit wakes the relay again (no second read to find nothing). Where
    /// the outbox's positions follow commit order, reads start after the last published position (`watermark`),
    /// instead of reading again, and dropping, the published rows not yet marked sent.
    private func drain(retrying: Bool = true, markWake: AsyncStream<Void>.Continuation) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let watermark = outbox.positionsFollowCommitOrder ? published.withLock { $0 } : nil
                let skipped = watermark == nil ? progress.withLock { $0.unmarked.union($0.marking) } : []
                let limit = Self.batchSize + skipped.count
                let rows = try await outbox.pending(after: watermark, limit: limit)
                let batch = Array(rows.lazy.filter { !skipped.contains($0.seq) }.prefix(Self.batchSize))
                let sawAll = rows.count < limit
                if sawAll { backlog.record(batch.count) }
                guard !batch.isEmpty else { return }
                let start = ContinuousClock.now
                try await publisher.publish(batch.map(Self.message(for:)))
                publishDuration.record(duration: start.duration(to: .now))
                progress.withLock { $0.unmarked.formUnion(batch.map(\.seq)) }
                if let last = batch.last?.seq {
                    published.withLock { $0 = max($0 ?? last, last) }
                }
                markWake.yield()
                failures = 0
                for entry in batch {
                    logger.debug(
                        "event published",
                        metadata: [
                            "event_id": "\(entry.eventID)", "user_id": "\(entry.userID)",
                            "event": "\(entry.eventType)", "traceparent": "\(entry.traceparent ?? "")",
                        ])
                }
                if sawAll {
                    // Every row that read saw is now confirmed: nothing waits until the next commit wakes the relay.
                    backlog.record(0)
                    return
                }
            } catch {
                guard retrying else { return }
                failures += 1
                let delay = Backoff.retry.delay(attempt: failures)
                logger.warning("outbox publish failed, will retry", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                guard (try? await Task.sleep(for: delay)) != nil else { return }
            }
        }
    }

    /// Writes the marks of confirmed rows at most every `markInterval`, only when there are some, until cancelled.
    private func markPeriodically(_ wakeups: AsyncStream<Void>) async {
        for await _ in wakeups {
            guard (try? await Task.sleep(for: Self.markInterval)) != nil else { return }
            await markConfirmed()
        }
    }

    /// Marks the confirmed rows sent; on failure they stay unmarked and are tried again next time.
    private func markConfirmed() async {
        let rows = progress.withLock { progress in
            defer { progress.unmarked = [] }
            progress.marking.formUnion(progress.unmarked)
            return progress.unmarked
        }
        guard !rows.isEmpty else { return }
        do {
            try await outbox.markSent(rows.sorted())
            progress.withLock { $0.marking.subtract(rows) }
        } catch {
            logger.warning("could not mark published outbox rows sent, will retry", metadata: ["error": "\(error)"])
            progress.withLock { progress in
                progress.marking.subtract(rows)
                progress.unmarked.formUnion(rows)
            }
        }
    }

    static func message(for entry: OutboxEntry) -> OutboundMessage {
        var headers: [String: String] = [:]
        if let traceparent = entry.traceparent { headers[HeaderName.traceparent] = traceparent }
        return OutboundMessage(
            queue: QueueName.dispatch, body: entry.body,
            properties: MessageProperties(
                contentType: "application/json", messageID: entry.eventID, type: entry.eventType,
                timestamp: entry.createdAt, appID: "user-service", persistent: true, headers: headers))
    }
}
