import Common
import Foundation
import Logging
import Messaging
import Metrics
import ServiceLifecycle
import ServiceRuntime
import Synchronization

/// Publishes committed outbox rows to `queue_dispatch`, in commit order, and marks them sent only after the
/// broker confirmed them. A row whose publish fails stays pending and is published again (consumers absorb
/// the duplicate by its event id and version).
///
/// Marking rows sent is lazy: the relay remembers in memory how far the broker has confirmed, and writes the
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
    /// Signalled when confirmed rows wait to be marked, so an idle relay never wakes up.
    private let markWakeups: AsyncStream<Void>
    private let markWake: AsyncStream<Void>.Continuation
    private let backlog = Gauge(label: "outbox_backlog")
    private let publishDuration = Metrics.Timer(label: "outbox_publish_duration_seconds")
    /// The highest sequence number the broker confirmed, and the confirmed range not yet marked in the database.
    private let progress = Mutex<(confirmedThrough: Int64, unmarked: ClosedRange<Int64>?)>((0, nil))

    init(outbox: any Outbox, publisher: Publisher, logger: Logger) {
        self.outbox = outbox
        self.publisher = publisher
        self.logger = logger
        (markWakeups, markWake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.markPeriodically() }
            // Rows left by an earlier process are published first, then new rows as their transactions commit.
            var commits = outbox.appended.cancelOnGracefulShutdown().makeAsyncIterator()
            repeat {
                await drain()
            } while await commits.next() != nil
            group.cancelAll()
        }
        // Shutting down: publish what the last requests committed, if the broker is there to take it.
        if publisher.isConnected {
            await drain(retrying: false)
        }
        await markConfirmed()
    }

    /// Publishes pending rows until none is left (or, with `retrying`, until cancelled).
    private func drain(retrying: Bool = true) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let cursor = progress.withLock { $0.confirmedThrough }
                let batch = try await outbox.pending(after: cursor, limit: Self.batchSize)
                if batch.count < Self.batchSize { backlog.record(batch.count) }
                guard let first = batch.first, let last = batch.last else { return }
                let start = ContinuousClock.now
                try await publisher.publish(batch.map(Self.message(for:)))
                publishDuration.record(duration: start.duration(to: .now))
                progress.withLock { progress in
                    progress.confirmedThrough = last.seq
                    let lower = progress.unmarked?.lowerBound ?? first.seq
                    progress.unmarked = min(lower, first.seq)...last.seq
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
    private func markPeriodically() async {
        for await _ in markWakeups {
            guard (try? await Task.sleep(for: Self.markInterval)) != nil else { return }
            await markConfirmed()
        }
    }

    /// Marks the confirmed rows sent; on failure they stay unmarked and are tried again next time.
    private func markConfirmed() async {
        guard let range = progress.withLock({ progress in
            defer { progress.unmarked = nil }
            return progress.unmarked
        }) else { return }
        do {
            try await outbox.markSent(range)
        } catch {
            logger.warning("could not mark published outbox rows sent, will retry", metadata: ["error": "\(error)"])
            progress.withLock { progress in
                let lower = min(progress.unmarked?.lowerBound ?? range.lowerBound, range.lowerBound)
                let upper = max(progress.unmarked?.upperBound ?? range.upperBound, range.upperBound)
                progress.unmarked = lower...upper
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
