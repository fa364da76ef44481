import Common
import EventCodec
import Delivery
import Foundation
import Logging
import Messaging
import Metrics
import ServiceRuntime

/// The order service's delivery handler: applies each event from `queue_order` to the snapshot store.
///
/// It returns once the store committed the event, or found it already applied or older, so the delivery loop acks
/// only what is durable. A body that is not an event throws ``InvalidMessage`` (`invalid_json` or `invalid_event`)
/// and goes to `queue_order.dead` at once. A fault of the database itself (`SnapshotStoreError.unavailable`: disk full,
/// read-only, I/O error, busy) is thrown as ``DependencyUnavailable`` `database`, so the loop pauses instead of
/// counting it against the message; any other store error is thrown as it is, for the loop to retry and count.
///
/// A batch of deliveries is applied in one transaction (the store's `apply(_ events:)`), each row by the same
/// version rule.
///
/// It counts `snapshots_applied_total{result="applied"|"ignored"}`, and records `event_lag_seconds` (from the event's
/// `occurred_at` to the commit) for every applied event that carries its time.
struct SnapshotApplier: Sendable {
    let store: any SnapshotStore
    let logger: Logger
    /// Made with the applier, so they bind to the metrics factory of the app being assembled.
    private let applied = Counter(label: "snapshots_applied_total", dimensions: [("result", "applied")])
    private let ignored = Counter(label: "snapshots_applied_total", dimensions: [("result", "ignored")])
    private let lag = Metrics.Timer(label: MetricName.eventLag)

    init(store: any SnapshotStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func handle(_ delivery: Delivery) async throws {
        let event = try Self.decode(delivery)
        let isApplied: Bool
        do {
            isApplied = try await store.apply(event)
        } catch SnapshotStoreError.unavailable(let reason) {
            throw DependencyUnavailable("database", reason: reason)
        }
        record(event, applied: isApplied, delivery)
    }

    /// Applies a batch of deliveries in one transaction of the store; throws (and then nothing was committed) when
    /// any delivery is not an event or the transaction failed.
    func handle(batch deliveries: [Delivery]) async throws {
        let events = try deliveries.map(Self.decode)
        let results: [Bool]
        do {
            results = try await store.apply(events)
        } catch SnapshotStoreError.unavailable(let reason) {
            throw DependencyUnavailable("database", reason: reason)
        }
        for index in events.indices { record(events[index], applied: results[index], deliveries[index]) }
    }

    private static func decode(_ delivery: Delivery) throws -> UserEvent {
        do throws(EventDecodingError) {
            return try UserEvent.decode(body: delivery.body, messageID: delivery.properties.messageID)
        } catch {
            throw InvalidMessage(error)
        }
    }

    /// Counts and logs one committed event.
    private func record(_ event: UserEvent, applied isApplied: Bool, _ delivery: Delivery) {
        if isApplied {
            applied.increment()
            if let occurredAt = event.occurredAt {
                // Clocks of different hosts may disagree a little: a commit never happens before its event.
                lag.record(duration: .seconds(max(0, Date().timeIntervalSince(occurredAt))))
            }
        } else {
            ignored.increment()
        }
        logger.debug(
            isApplied ? "snapshot applied" : "event already applied or older, ignored",
            metadata: [
                "event_id": .untrusted(event.eventID), "user_id": .untrusted(event.userID), "version": "\(event.version)",
                "traceparent": .untrusted(delivery.properties.headers[HeaderName.traceparent] ?? ""),
            ])
    }
}
