import Logging
import NIOCore
import NIOHTTP1

/// A request whose head and whole body have arrived.
struct AssembledRequest: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer
}

/// The limits and timeouts of one connection, from ``HTTPServerConfiguration``.
struct ConnectionLimits {
    var maxBodySize: Int
    var maxHeaderSize: Int
    var headTimeout: TimeAmount
    var bodyTimeout: TimeAmount
    var idleTimeout: TimeAmount
    var writeTimeout: TimeAmount

    init(_ configuration: HTTPServerConfiguration) {
        self.init(
            maxBodySize: configuration.maxBodySize, maxHeaderSize: configuration.maxHeaderSize,
            headTimeout: configuration.headTimeout, bodyTimeout: configuration.bodyTimeout,
            idleTimeout: configuration.idleTimeout, writeTimeout: configuration.writeTimeout)
    }

    init(
        maxBodySize: Int, maxHeaderSize: Int, headTimeout: Duration, bodyTimeout: Duration, idleTimeout: Duration,
        writeTimeout: Duration
    ) {
        self.maxBodySize = maxBodySize
        self.maxHeaderSize = maxHeaderSize
        self.headTimeout = TimeAmount(headTimeout)
        self.bodyTimeout = TimeAmount(bodyTimeout)
        self.idleTimeout = TimeAmount(idleTimeout)
        self.writeTimeout = TimeAmount(writeTimeout)
    }
}

/// Bytes of a request arrived on the socket: sent up the pipeline by ``RequestBytesObserver`` before the bytes are
/// decoded, so that ``RequestAssemblyHandler`` can tell an idle kept-alive connection from one sending a head.
struct RequestBytesArrived {}

/// The first handler of a connection: announces every read with ``RequestBytesArrived``, then passes it on.
final class RequestBytesObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireUserInboundEventTriggered(RequestBytesArrived())
        context.fireChannelRead(data)
    }
}

@available(*, unavailable)
extension RequestBytesObserver: Sendable {}

/// The HTTP protocol logic of one connection, between NIO's HTTP codec (with `HTTPServerPipelineHandler`, which
/// hands over one request at a time) and the async code that answers requests.
///
/// Inbound it assembles request parts into ``AssembledRequest``s and enforces the limits: body size (413, from
/// `Content-Length` up front and while streaming), header size (431), target length (414), malformed requests
/// (400), answering those itself and closing the connection. Outbound it turns an ``HTTPResponse`` into head,
/// body and end with `Content-Length` and `Connection` set, and closes the connection after the response when
/// the request or response asked for it.
///
/// It runs one timer at a time: the *head* timer from the accept, or from the first byte of a later request, until
/// the head is complete (slowloris); the *body* timer from the head to the end of the body; the *idle* timer on a
/// kept-alive connection from a response to the next request's first byte. Each closes the connection when it
/// fires; none runs while a response is being produced. Beside them, the *write* timer runs while a response is not
/// written out: a connection that makes no write progress (no part of a response written out; a body goes out in
/// chunks of 16 KiB) for the write timeout is closed, as its client does not read what it asked for. It tells the
/// ``ConnectionRegistry`` when the connection is idle (evictable), busy, or stalled on writing (evicted first). A connection admitted as `.refuse` answers its first request 503 with `Retry-After`
/// and closes; one admitted as `.drop` closes as soon as it is active.
final class RequestAssemblyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = AssembledRequest
    typealias OutboundIn = HTTPResponse
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for the next request head; the head or idle timer runs.
        case waitingForHead
        /// Collecting the body of `head`; the body timer runs.
        case receivingBody(HTTPRequestHead, ByteBuffer)
        /// The request was handed on and its response is awaited; no timer.
        case awaitingResponse(HTTPRequestHead)
        /// A final response was sent with `Connection: close` (or the connection is otherwise going away);
        /// further input is dropped.
        case closing
    }

    /// Which timer runs, for the log line when it fires.
    private enum Timer: String {
        case head = "no complete request head within the head timeout"
        case body = "request body not complete within the body timeout"
        case idle = "kept-alive connection idle beyond the idle timeout"
    }

    private var state = State.waitingForHead
    private var timer: (kind: Timer, task: Scheduled<Void>)?
    /// Runs while a response is not written out yet; closes the connection when it fires without progress.
    private var writeTimer: Scheduled<Void>?
    /// Responses handed to the channel whose last byte has not left it yet.
    private var unfinishedWrites = 0
    /// Parts of responses written out so far (a body goes out in chunks of ``writeChunk`` bytes): each is progress.
    private var finishedWrites = 0
    /// The size of the chunks a response body is written in, so that a client reading slowly shows progress.
    static let writeChunk = 16 << 10
    /// Bytes arrived while a response was being produced (a pipelined or early next request).
    private var bytesWhileBusy = false
    private let limits: ConnectionLimits
    private let admission: ConnectionRegistry.Admission
    private let registry: ConnectionRegistry?
    private let logger: Logger

    init(
        limits: ConnectionLimits, admission: ConnectionRegistry.Admission = .serve, registry: ConnectionRegistry?,
        logger: Logger
    ) {
        self.limits = limits
        self.admission = admission
        self.registry = registry
        self.logger = logger
    }

    private var maxBodySize: Int { self.limits.maxBodySize }
    private var maxHeaderSize: Int { self.limits.maxHeaderSize }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            self.becameActive(context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        if self.timer == nil, case .waitingForHead = self.state {
            self.becameActive(context: context)
        }
        context.fireChannelActive()
    }

    private func becameActive(context: ChannelHandlerContext) {
        if self.admission == .drop {
            self.state = .closing
            context.close(promise: nil)
            return
        }
        self.startTimer(.head, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.cancelTimer()
        self.writeTimer?.cancel()
        self.writeTimer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.cancelTimer()
        self.writeTimer?.cancel()
        self.writeTimer = nil
    }

    /// Unwritable: what was written waits for the client to read, so the connection is the first to make room.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.registry?.markWriteStalled(context.channel, !context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    // MARK: Write progress

    /// A response was handed to the channel: the write timer runs until every response handed over is written out.
    private func responseWriteStarted(_ written: EventLoopFuture<Void>, context: ChannelHandlerContext) {
        self.unfinishedWrites += 1
        if self.writeTimer == nil { self.armWriteTimer(context: context, progress: self.finishedWrites) }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        written.whenComplete { _ in
            let handler = handler.value
            handler.unfinishedWrites -= 1
            handler.finishedWrites += 1
            if handler.unfinishedWrites == 0 {
                handler.writeTimer?.cancel()
                handler.writeTimer = nil
            }
        }
    }

    /// A promise for one part of a response, which counts as progress once it is written out.
    private func progressPromise(context: ChannelHandlerContext) -> EventLoopPromise<Void> {
        let promise = context.eventLoop.makePromise(of: Void.self)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { _ in handler.value.finishedWrites += 1 }
        return promise
    }

    /// After the write timeout: closes the connection if no part was written out since `progress`, else waits again.
    private func armWriteTimer(context: ChannelHandlerContext, progress: Int) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        self.writeTimer = context.eventLoop.scheduleTask(in: self.limits.writeTimeout) {
            let (handler, context) = (handler.value, bound.value)
            if handler.finishedWrites > progress {
                handler.armWriteTimer(context: context, progress: handler.finishedWrites)
                return
            }
            handler.writeTimer = nil
            handler.logger.debug("Closing connection: no write progress within the write timeout (the client does not read)")
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is RequestBytesArrived else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch self.state {
        case .waitingForHead:
            self.registry?.markBusy(context.channel)
            // A new connection's head timer runs since the accept; a kept-alive one's starts with this byte.
            if self.timer?.kind == .idle {
                self.startTimer(.head, context: context)
            }
        case .awaitingResponse:
            self.bytesWhileBusy = true
        case .receivingBody, .closing:
            break
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = Self.unwrapInboundIn(data)
        switch (self.state, part) {
        case (.waitingForHead, .head(let head)):
            self.registry?.markBusy(context.channel)
            if self.admission == .refuse {
                self.reject(context: context, version: head.version, with: Self.serverBusy)
                return
            }
            if let rejection = self.rejection(of: head) {
                self.reject(context: context, version: head.version, with: rejection)
                return
            }
            if head.version.major == 1 && head.version.minor >= 1,
                head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" })
            {
                context.writeAndFlush(
                    Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                    promise: nil)
            }
            self.state = .receivingBody(head, context.channel.allocator.buffer(capacity: 0))
            self.startTimer(.body, context: context)

        case (.receivingBody(let head, var body), .body(var chunk)):
            guard body.readableBytes + chunk.readableBytes <= self.maxBodySize else {
                self.reject(context: context, version: head.version, with: self.bodyTooLarge)
                return
            }
            self.state = .closing  // release our copy of `body` so the append below does not copy it
            body.writeBuffer(&chunk)
            self.state = .receivingBody(head, body)

        case (.receivingBody(let head, let body), .end):
            self.cancelTimer()
            self.state = .awaitingResponse(head)
            context.fireChannelRead(Self.wrapInboundOut(AssembledRequest(head: head, body: body)))

        case (.closing, _):
            break  // the connection is going away; ignore whatever is still arriving

        case (.waitingForHead, .body), (.waitingForHead, .end), (.receivingBody, .head), (.awaitingResponse, _):
            // HTTPServerPipelineHandler holds back the next request until the response is written, and the
            // decoder emits parts in order, so none of these can happen.
            assertionFailure("unexpected \(part) in state \(self.state)")
            self.logger.error("HTTP connection state violated; closing", metadata: ["state": "\(self.state)"])
            self.state = .closing
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        switch self.state {
        case .waitingForHead, .receivingBody:
            let rejection =
                parserError == .headerOverflow
                ? HTTPError(
                    .requestHeaderFieldsTooLarge, error: "headers_too_large",
                    detail: "The request headers exceed \(self.maxHeaderSize) bytes.")
                : HTTPError.badRequest("The request is not valid HTTP/1.1.")
            self.logger.debug("Rejected malformed request", metadata: ["error": "\(parserError)"])
            self.reject(context: context, version: .http1_1, with: rejection)
        case .awaitingResponse:
            // A response is being produced; we cannot answer out of turn, so just give up on the connection.
            self.state = .closing
            context.close(promise: nil)
        case .closing:
            break
        }
    }

    /// The answer of a connection refused because every slot is busy.
    static let serverBusy = HTTPError(
        .serviceUnavailable, error: "server_busy",
        detail: "The server is at its connection limit with every connection in a request; retry shortly.",
        headers: ["retry-after": "1"])

    private var bodyTooLarge: HTTPError {
        HTTPError(
            .payloadTooLarge, error: "body_too_large", detail: "The request body exceeds \(self.maxBodySize) bytes.")
    }

    /// The error response for a head that breaks a limit, or `nil` if the request may proceed.
    private func rejection(of head: HTTPRequestHead) -> HTTPError? {
        if head.uri.utf8.count > self.maxHeaderSize {
            return HTTPError(
                .uriTooLong, error: "uri_too_long", detail: "The request target exceeds \(self.maxHeaderSize) bytes.")
        }
        if let length = head.headers["content-length"].first.flatMap({ Int($0) }), length > self.maxBodySize {
            return self.bodyTooLarge
        }
        return nil
    }

    /// Answers with `error` out of band and closes the connection: used while no response is being produced.
    private func reject(context: ChannelHandlerContext, version: HTTPVersion, with error: HTTPError) {
        self.cancelTimer()
        self.state = .closing
        self.logger.debug(
            "Rejected request", metadata: ["status": "\(error.status.code)", "error": "\(error.error)"])
        self.writeResponse(
            HTTPResponse(error: error), version: version, omitBody: false, keepAlive: false, context: context,
            promise: nil)
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let response = Self.unwrapOutboundIn(data)
        guard case .awaitingResponse(let head) = self.state else {
            // The connection was closed or rejected under the request (idle timeout cannot fire here).
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        // NIO's encoder sends an answer to CONNECT without body or length (as for a tunnel), so only closing the
        // connection tells the client where it ends.
        let keepAlive =
            head.isKeepAlive && head.method != .CONNECT
            && !response.headers[canonicalForm: "connection"].contains { $0.lowercased() == "close" }
        // Update the state and timer before writing: writing the end lets HTTPServerPipelineHandler deliver the
        // next pipelined request into `channelRead` re-entrantly.
        if keepAlive {
            self.state = .waitingForHead
            if self.bytesWhileBusy {
                self.startTimer(.head, context: context)  // the next request has started
            } else {
                self.registry?.markIdle(context.channel)
                self.startTimer(.idle, context: context)
            }
            self.bytesWhileBusy = false
        } else {
            self.state = .closing
        }
        self.writeResponse(
            response, version: head.version, omitBody: head.method == .HEAD, keepAlive: keepAlive, context: context,
            promise: promise)
    }

    private func writeResponse(
        _ response: HTTPResponse, version: HTTPVersion, omitBody: Bool, keepAlive: Bool,
        context: ChannelHandlerContext, promise: EventLoopPromise<Void>?
    ) {
        var headers = response.headers
        let mayHaveBody = response.status != .noContent && response.status != .notModified
        if mayHaveBody {
            headers.replaceOrAdd(name: "content-length", value: String(response.body.count))
        } else {
            headers.remove(name: "content-length")
        }
        if !keepAlive {
            headers.replaceOrAdd(name: "connection", value: "close")
        } else if version == .http1_0 {
            headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        self.responseWriteStarted(written.futureResult, context: context)
        if mayHaveBody && !omitBody && !response.body.isEmpty {
            var body = context.channel.allocator.buffer(bytes: response.body)
            while let chunk = body.readSlice(length: min(Self.writeChunk, body.readableBytes)) {
                context.write(Self.wrapOutboundOut(.body(.byteBuffer(chunk))), promise: self.progressPromise(context: context))
                if body.readableBytes == 0 { break }
            }
        }
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: written)
        if !keepAlive {
            // Close only once the response has been written, so the client gets all of it.
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        written.futureResult.cascade(to: promise)
    }

    // MARK: Timers

    private func startTimer(_ kind: Timer, context: ChannelHandlerContext) {
        self.timer?.task.cancel()
        let timeout: TimeAmount
        switch kind {
        case .head: timeout = self.limits.headTimeout
        case .body: timeout = self.limits.bodyTimeout
        case .idle: timeout = self.limits.idleTimeout
        }
        let channel = context.channel
        let logger = self.logger
        let task = context.eventLoop.scheduleTask(in: timeout) {
            logger.debug("Closing connection: \(kind.rawValue)")
            channel.close(promise: nil)
        }
        self.timer = (kind, task)
    }

    private func cancelTimer() {
        self.timer?.task.cancel()
        self.timer = nil
    }
}

@available(*, unavailable)
extension RequestAssemblyHandler: Sendable {}
