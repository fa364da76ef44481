import Logging
import NIOCore

/// Sits on the listening channel and sees every accepted connection before it is set up.
///
/// Admission and the connection limit are the ``ConnectionRegistry``'s (decided when a connection is set up). This
/// handler does graceful shutdown: on `ChannelShouldQuiesceEvent` it stops accepting, asks every served connection
/// to finish its current request and close (handled by `HTTPServerPipelineHandler`), and closes whatever is still
/// open after the grace period.
final class ClientConnectionTracker: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private var quiescing = false
    private let registry: ConnectionRegistry
    private let gracePeriod: TimeAmount
    private let logger: Logger

    init(registry: ConnectionRegistry, gracePeriod: Duration, logger: Logger) {
        self.registry = registry
        self.gracePeriod = TimeAmount(gracePeriod)
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.quiescing else {
            Self.unwrapInboundIn(data).close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard !self.quiescing else { return }
        self.quiescing = true
        let connections = self.registry.beginQuiescing()
        if !connections.isEmpty {
            let registry = self.registry
            let logger = self.logger
            context.eventLoop.scheduleTask(in: self.gracePeriod) {
                let remaining = registry.servedChannels
                guard !remaining.isEmpty else { return }
                logger.warning(
                    "Closing connections still busy after the shutdown grace period",
                    metadata: ["open_connections": "\(remaining.count)"])
                for connection in remaining { connection.close(promise: nil) }
            }
        }
        self.logger.debug("Stopping to accept connections", metadata: ["open_connections": "\(connections.count)"])
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ClientConnectionTracker: Sendable {}
