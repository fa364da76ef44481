import Synchronization

/// How many AMQP connections of this process the broker blocks right now (`connection.blocked`: a memory or disk
/// alarm), for a health report. Each connection also exposes its own state (``Publisher/isBlocked``) and the gauge
/// `amqp_blocked{role}`.
public enum BrokerFlowControl {
    private static let blocked = Atomic<Int>(0)

    /// Connections of this process that the broker blocks now.
    public static var blockedConnections: Int { blocked.load(ordering: .acquiring) }

    static func connectionBlocked() { blocked.add(1, ordering: .acquiringAndReleasing) }

    static func connectionUnblocked() { blocked.subtract(1, ordering: .acquiringAndReleasing) }
}
