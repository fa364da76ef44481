public import ServiceLifecycle

/// The long-running parts of one service process, grouped by the role that fixes when each starts and stops.
///
/// They start connections first, then workers, then listeners, and stop in the reverse order: the listeners stop
/// taking new work, the workers finish what is in flight while the connections are still up to confirm its publishes
/// and send its acks, and the connections close last. A delivery loop therefore always stops before its consumer, and
/// an outbox relay before its publisher, whatever order the parts are written in.
public struct ServiceStages: Sendable {
    /// Broker connections (publishers, consumers) the workers use; stopped last, in reverse of this order.
    public var connections: [any Service]
    /// Loops that process work (delivery loops, outbox relays); stopped after the listeners, before the connections.
    public var workers: [any Service]
    /// What takes input from outside the process (HTTP servers, signal handlers); stopped first.
    public var listeners: [any Service]

    /// Groups the parts of a process.
    public init(connections: [any Service] = [], workers: [any Service] = [], listeners: [any Service] = []) {
        self.connections = connections
        self.workers = workers
        self.listeners = listeners
    }

    /// Every part in start order, as a `ServiceGroup` takes them (it shuts them down in reverse).
    public var inStartOrder: [any Service] { connections + workers + listeners }
}
