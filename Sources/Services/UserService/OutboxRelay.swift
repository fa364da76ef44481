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
/// commit and on every retry while the broker is away), `outbox_publish_duration_seconds` (from
/// handing a batch to the publisher to the broker's confirm of all of it), `outbox_set_aside` (rows set aside, as
/// of the relay's start and its last set-aside) and `outbox_set_aside_total` (rows this process set aside).
final class OutboxRelay: Service, Sendable {
    /// Where the relay publishes: Messaging's `Publisher` (a stand-in in tests).
    protocol Destination: Sendable {
        /// Returns once the broker confirmed every message; throws when any was not.
        func publish(_ messages: [OutboundMessage]) async throws
        /// The frame size agreed with the broker.
        var frameMax: Int { get }
        /// Whether the connection is up.
        var isConnected: Bool { get }
    }

    /// Rows published per batch: one `publish` call, pipelined inside the publisher's confirm window.
    static let batchSize = 1_000
    /// How often confirmed rows are marked sent in the database.
    static let markInterval = Duration.milliseconds(200)

    private let outbox: any Outbox
    private let publisher: any Destination
    private let logger: Logger
    private let backlog = Gauge(label: "outbox_backlog")
    private let publishDuration = Metrics.Timer(label: "outbox_publish_duration_seconds")
    private let setAsideRows = Counter(label: "outbox_set_aside_total")
    private let setAsideNow = Gauge(label: "outbox_set_aside")
    /// Rows the broker confirmed that are not marked in the database yet, and those whose marks are being written.
    /// Both are left out of what the relay reads.
    private let progress = Mutex<(unmarked: Set<Int64>, marking: Set<Int64>)>(([], []))
    private let relaying = Atomic<Bool>(false)
    /// The highest position published and confirmed while this relay held the turn; used only where positions follow
    /// commit order.
    private let published = Mutex<Int64?>(nil)

    init(outbox: any Outbox, publisher: any Destination, logger: Logger) {
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
        await recordSetAside()
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
    /// the outbox's positions follow commit order, reads start after the last position below which every row is
    /// published (`watermark`); rows published and not yet marked sent are left out of what a read returns.
    ///
    /// A batch takes at most one row per user, the oldest: a user's next event waits for the next batch, so it is
    /// sent only once the broker confirmed the one before. A batch the broker partly refuses is sent again whole,
    /// and so a user's events reach `queue_dispatch` for the first time in version order, whatever was nacked.
    /// A row AMQP cannot carry is set aside (``Outbox/setAside(_:reason:)``) and the rows after it go on.
    private func drain(retrying: Bool = true, markWake: AsyncStream<Void>.Continuation) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let watermark = outbox.positionsFollowCommitOrder ? published.withLock { $0 } : nil
                let skipped = progress.withLock { $0.unmarked.union($0.marking) }
                let limit = Self.batchSize + skipped.count
                let rows = try await outbox.pending(after: watermark, limit: limit)
                let unpublished = rows.filter { !skipped.contains($0.seq) }
                // The frame size of a connection that is up: a stale one of a connection gone must not set a row
                // aside that the next connection can carry (a publish that then does not fit fails, and is planned
                // again with the new size).
                let frameMax = publisher.isConnected ? publisher.frameMax : AMQPLimits.frameMax
                let plan = Self.plan(unpublished, frameMax: frameMax)
                try await setAside(plan.setAside)
                let sawAll = rows.count < limit
                if sawAll { backlog.record(unpublished.count - plan.setAside.count) }
                guard !plan.batch.isEmpty else {
                    // Nothing to publish: the read held only rows set aside now.
                    advanceWatermark(to: plan.advancedTo)
                    if sawAll { return } else { continue }
                }
                let start = ContinuousClock.now
                try await publisher.publish(plan.batch.map(\.message))
                publishDuration.record(duration: start.duration(to: .now))
                progress.withLock { $0.unmarked.formUnion(plan.batch.map(\.entry.seq)) }
                advanceWatermark(to: plan.advancedTo)
                markWake.yield()
                failures = 0
                for (entry, _) in plan.batch {
                    logger.debug(
                        "event published",
                        metadata: [
                            "event_id": "\(entry.eventID)", "user_id": "\(entry.userID)",
                            "event": "\(entry.eventType)", "traceparent": "\(entry.traceparent ?? "")",
                        ])
                }
                if sawAll && plan.finishesTheRead {
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

    /// Every row up to `position` is published or set aside: later reads may start after it.
    private func advanceWatermark(to position: Int64?) {
        guard let position else { return }
        published.withLock { $0 = max($0 ?? position, position) }
    }

    /// What one round of ``drain(retrying:markWake:)`` does with the rows it read (oldest first, those already
    /// published left out).
    struct Plan {
        /// The rows to publish now, with their messages: at most `batchSize`, one per user.
        var batch: [(entry: OutboxEntry, message: OutboundMessage)] = []
        /// The rows AMQP cannot carry, with the reason: set aside before the batch is published.
        var setAside: [(entry: OutboxEntry, reason: String)] = []
        /// The first row left for a later batch (its user already has an older row in this one).
        var firstDeferred: Int64?
        /// The position below which every row read is published or set aside once `batch` is confirmed.
        var advancedTo: Int64?
        /// Whether every row read was looked at (none left over because the batch was full).
        var sawEveryRow = true
        /// Whether, once `batch` is confirmed, nothing the read returned is left to publish.
        var finishesTheRead: Bool { firstDeferred == nil && sawEveryRow }
    }

    /// Picks the batch from `rows`: the oldest row of each user, up to `batchSize`; a row AMQP cannot carry in a frame
    /// of `frameMax` bytes is set aside instead.
    static func plan(_ rows: [OutboxEntry], frameMax: Int, batchSize: Int = batchSize) -> Plan {
        var plan = Plan()
        var users: Set<String> = []
        for entry in rows {
            guard plan.batch.count < batchSize else {
                plan.sawEveryRow = false
                break
            }
            // A user's later row waits for the next batch; only a row that goes now is made into a message.
            guard !users.contains(entry.userID) else {
                plan.firstDeferred = plan.firstDeferred ?? entry.seq
                continue
            }
            let message = Self.message(for: entry)
            if let problem = message.amqpProblem(frameMax: frameMax) {
                plan.setAside.append((entry, problem))
            } else {
                users.insert(entry.userID)
                plan.batch.append((entry, message))
            }
            if plan.firstDeferred == nil { plan.advancedTo = entry.seq }
        }
        return plan
    }

    /// Sets `outbox_set_aside` to the rows set aside now.
    private func recordSetAside() async {
        if let count = try? await outbox.setAsideCount() { setAsideNow.record(count) }
    }

    /// Sets the rows `plan` found unpublishable aside in the database, one log line each.
    private func setAside(_ rows: [(entry: OutboxEntry, reason: String)]) async throws {
        guard !rows.isEmpty else { return }
        for (entry, reason) in rows {
            try await outbox.setAside(entry.seq, reason: reason)
            setAsideRows.increment()
            logger.error(
                "outbox row set aside: AMQP cannot carry it; it stays in the outbox until released",
                metadata: [
                    "outbox_seq": "\(entry.seq)", "event_id": .untrusted(entry.eventID),
                    "user_id": .untrusted(entry.userID), "reason": .untrusted(reason),
                ])
        }
        await recordSetAside()
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
                timestamp: MessageProperties.timestamp(for: entry.createdAt), appID: "user-service", persistent: true, headers: headers))
    }
}

extension Publisher: OutboxRelay.Destination {}
