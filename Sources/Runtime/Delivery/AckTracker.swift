import Messaging
import Synchronization

/// Which acks to send as deliveries finish, when they are handled concurrently: one `multiple` ack for a run of
/// finished deliveries below the lowest unfinished one, single acks above it.
///
/// A `basic.ack` with `multiple` settles every delivery of the channel up to its tag, so it may only be sent for a tag
/// below which every delivery taken has finished. Deliveries are registered in the order the consumer handed them
/// over (delivery-tag order on each connection); one that ends without an ack (shutdown, a lost connection) stays
/// unfinished, so no later `multiple` ack covers it. Tags are per connection (`generation`), tracked apart.
final class AckTracker: Sendable {
    /// Tags taken and not finished, ascending, per connection generation.
    private let unfinished = Mutex<[UInt64: [UInt64]]>([:])

    /// Registers deliveries the loop took; before any of them can finish.
    func taken(_ deliveries: some Sequence<Delivery>) {
        unfinished.withLock { unfinished in
            for delivery in deliveries {
                var tags = unfinished[delivery.generation, default: []]
                if let last = tags.last, last > delivery.deliveryTag {
                    tags.insert(delivery.deliveryTag, at: Self.position(of: delivery.deliveryTag, in: tags))
                } else {
                    tags.append(delivery.deliveryTag)
                }
                unfinished[delivery.generation] = tags
            }
        }
    }

    /// Marks `deliveries` finished and hands the acks that settle them to `send`, in order, before any other call can
    /// decide one (which acks: ``finished(_:)``). `send` must not call back into the tracker.
    ///
    /// Acks must reach the connection in the order they were decided: a `multiple` ack covers tags an earlier call
    /// acked singly, and if it overtook that single ack, the single ack would name a tag the broker no longer knows
    /// (406 "unknown delivery tag", which closes the channel and has every unacked delivery redelivered).
    func settle(_ deliveries: [Delivery], send: (_ delivery: Delivery, _ multiple: Bool) -> Void) {
        unfinished.withLock { unfinished in
            for (delivery, multiple) in Self.finish(deliveries, in: &unfinished) { send(delivery, multiple) }
        }
    }

    /// Marks `deliveries` finished and returns the acks that settle them: per generation, one (with `multiple` when
    /// it covers more than one) for those below the lowest still unfinished tag, one single ack for each other one.
    /// They must be sent in this order and before any later call's: ``settle(_:send:)`` does both.
    func finished(_ deliveries: [Delivery]) -> [(delivery: Delivery, multiple: Bool)] {
        unfinished.withLock { Self.finish(deliveries, in: &$0) }
    }

    private static func finish(
        _ deliveries: [Delivery], in unfinished: inout [UInt64: [UInt64]]
    ) -> [(delivery: Delivery, multiple: Bool)] {
        var acks: [(delivery: Delivery, multiple: Bool)] = []
        var byGeneration: [UInt64: [Delivery]] = [:]
        for delivery in deliveries { byGeneration[delivery.generation, default: []].append(delivery) }
        for (generation, finished) in byGeneration {
            var tags = unfinished[generation] ?? []
            for delivery in finished {
                let index = position(of: delivery.deliveryTag, in: tags)
                if index < tags.count && tags[index] == delivery.deliveryTag { tags.remove(at: index) }
            }
            unfinished[generation] = tags.isEmpty ? nil : tags
            let lowest = tags.first ?? .max
            let below = finished.filter { $0.deliveryTag < lowest }
            if below.count > 1, let highest = below.max(by: { $0.deliveryTag < $1.deliveryTag }) {
                acks.append((highest, true))
            } else {
                acks += below.map { ($0, false) }
            }
            acks += finished.filter { $0.deliveryTag >= lowest }.map { ($0, false) }
        }
        return acks
    }

    /// Where `tag` is, or would be inserted, in the ascending `tags`.
    private static func position(of tag: UInt64, in tags: [UInt64]) -> Int {
        var low = 0
        var high = tags.count
        while low < high {
            let middle = (low + high) / 2
            if tags[middle] < tag { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
