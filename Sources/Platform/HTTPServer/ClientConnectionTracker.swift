import Logging
import NIOCore

/// Sits on the listening channel and sees every accepted connection before it is set up.
///
/// It closes connections beyond `maxConnections` at once, and on `ChannelShouldQuiesceEvent` (graceful shutdown)
/// stops accepting, asks every open connection to finish its current request and close (handled by
/// `HTTPServerPipelineHandler`), and closes whatever is still open after the grace period.
final class ClientConnectionTracker: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private enum State {
        case accepting
        case quiescing(deadline: Scheduled<Void>?)
    }

    private var state = State.accepting
    private var connections: [ObjectIdentifier: any Channel] = [:]
    private let maxConnections: Int
    private let gracePeriod: TimeAmount
    private let logger: Logger

    init(maxConnections: Int, gracePeriod: Duration, logger: Logger) {
        self.maxConnections = maxConnections
        self.gracePeriod = TimeAmount(gracePeriod)
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let connection = Self.unwrapInboundIn(data)
        guard case .accepting = self.state, self.connections.count < self.maxConnections else {
            self.logger.warning(
                "Refusing connection: connection limit reached or shutting down",
                metadata: ["open_connections": "\(self.connections.count)"])
            connection.close(promise: nil)
            return
        }
        let id = ObjectIdentifier(connection)
        self.connections[id] = connection
        connection.closeFuture.hop(to: context.eventLoop).assumeIsolated().whenComplete { _ in
            self.connectionClosed(id)
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard case .accepting = self.state else { return }
        var deadline: Scheduled<Void>?
        if !self.connections.isEmpty {
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: self.gracePeriod) {
                self.closeRemainingConnections()
            }
        }
        self.state = .quiescing(deadline: deadline)
        self.logger.debug(
            "Stopping to accept connections", metadata: ["open_connections": "\(self.connections.count)"])
        for connection in self.connections.values {
            connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        context.close(promise: nil)
    }

    private func connectionClosed(_ id: ObjectIdentifier) {
        self.connections.removeValue(forKey: id)
        if case .quiescing(let deadline) = self.state, self.connections.isEmpty {
            deadline?.cancel()
            self.state = .quiescing(deadline: nil)
        }
    }

    private func closeRemainingConnections() {
        guard !self.connections.isEmpty else { return }
        self.logger.warning(
            "Closing connections still busy after the shutdown grace period",
            metadata: ["open_connections": "\(self.connections.count)"])
        for connection in self.connections.values {
            connection.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension ClientConnectionTracker: Sendable {}
