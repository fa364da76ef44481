import Foundation
@testable import HTTPServer
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

/// The HTTP request path against any byte stream a client may send.
///
/// Properties, for every stream: nothing crashes; what the server writes is a sequence of valid HTTP/1.1 responses
/// (status line, headers, a body as long as its `Content-Length`, errors as JSON), nothing after a
/// `Connection: close` one; every well-formed request is answered in order unless an earlier answer closed the
/// connection; and the connection never hangs: once the input stops, it is closed within the idle timeout.
///
/// Most cases run through the server's channel pipeline in an `EmbeddedChannel` (fast, virtual time); a smaller
/// number go through a real ``HTTPServer`` on a loopback port, which also covers the connection setup and the
/// per-connection tasks.
struct HTTPFuzzTests {
    static let idleTimeout = Duration.seconds(5)

    @Test func wellFormedStreams() async throws {
        try await Fuzz.run("http.well-formed", cases: 1_000, seed: 0x4770) { fuzzCase in
            let requests = HTTPInputGenerator.requests(&fuzzCase.random, wellFormed: true)
            let input = Array(requests.map(\.bytes).joined())
            fuzzCase.note(input: input)
            let outcome = try await Self.serveEmbedded(input, &fuzzCase)
            Self.checkResponses(outcome, fuzzCase)

            // Each request is answered, in order, until an answer closes the connection.
            let answered = outcome.stream.responses
            #expect(!answered.isEmpty, "no answer; \(fuzzCase)")
            for (index, response) in answered.enumerated() {
                let closes = response.header("connection")?.lowercased() == "close"
                if index < answered.count - 1 { #expect(!closes, "\(fuzzCase)") }
                if requests[index].closes { #expect(closes, "a request asking to close was kept open; \(fuzzCase)") }
            }
            if answered.count < requests.count {
                #expect(
                    answered.last?.header("connection")?.lowercased() == "close",
                    "\(requests.count - answered.count) request(s) unanswered on an open connection; \(fuzzCase)")
            }
        }
    }

    @Test func hostileStreams() async throws {
        try await Fuzz.run("http.hostile", cases: 1_000, seed: 0x4771) { fuzzCase in
            let input = Array(HTTPInputGenerator.requests(&fuzzCase.random, wellFormed: false).map(\.bytes).joined())
            fuzzCase.note(input: input)
            Self.checkResponses(try await Self.serveEmbedded(input, &fuzzCase), fuzzCase)
        }
    }

    @Test func mutatedStreams() async throws {
        try await Fuzz.run("http.mutations", cases: 1_000, seed: 0x4772) { fuzzCase in
            let valid = Array(HTTPInputGenerator.requests(&fuzzCase.random, wellFormed: true).map(\.bytes).joined())
            let input = Mutation.mutate(
                valid, count: 4, using: &fuzzCase.random, interesting: HTTPInputGenerator.interestingBytes)
            fuzzCase.note(input: input)
            Self.checkResponses(try await Self.serveEmbedded(input, &fuzzCase), fuzzCase)
        }
    }

    @Test func randomBytes() async throws {
        try await Fuzz.run("http.random-bytes", cases: 1_000, seed: 0x4773) { fuzzCase in
            let count = fuzzCase.random.length(upTo: 3_000)
            var input = fuzzCase.random.bytes(count: count, interesting: HTTPInputGenerator.interestingBytes)
            if fuzzCase.random.chance(0.5) { input = Array("GET /users/1 HTTP/1.1\r\n".utf8) + input }
            fuzzCase.note(input: input)
            Self.checkResponses(try await Self.serveEmbedded(input, &fuzzCase), fuzzCase)
        }
    }

    /// The same kinds of streams through a real server on a loopback port, several connections at a time; the
    /// server still answers a plain request afterwards.
    @Test(.timeLimit(.minutes(2))) func loopbackServer() async throws {
        let idleTimeout = Duration.milliseconds(500)
        let configuration = HTTPServerConfiguration(
            host: "127.0.0.1", port: 0, maxBodySize: HTTPInputGenerator.maxBodySize,
            maxHeaderSize: HTTPInputGenerator.maxHeaderSize, idleTimeout: idleTimeout)
        let server = HTTPServer(configuration: configuration, router: Self.router(), logger: Self.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try await server.listeningPort()

            var inputs: [(FuzzCase, [UInt8])] = []
            Fuzz.run("http.loopback", cases: 240, seed: 0x4774) { fuzzCase in
                // No HEAD: without knowing which requests the server parsed, HEAD answers cannot be told apart.
                var input = Array(
                    HTTPInputGenerator.requests(&fuzzCase.random, wellFormed: false, allowHEAD: false).map(\.bytes)
                        .joined())
                if fuzzCase.random.chance(0.3) {
                    input = Mutation.mutate(
                        input, count: 3, using: &fuzzCase.random, interesting: HTTPInputGenerator.interestingBytes)
                }
                fuzzCase.note(input: input)
                inputs.append((fuzzCase, input))
            }
            for batch in stride(from: 0, to: inputs.count, by: 12) {
                try await withThrowingTaskGroup(of: Void.self) { connections in
                    for (fuzzCase, input) in inputs[batch..<min(batch + 12, inputs.count)] {
                        connections.addTask {
                            let deadline = idleTimeout * 2 + .seconds(10)
                            guard let received = try await LoopbackClient.exchange(input, port: port, deadline: deadline)
                            else {
                                Issue.record("the server neither answered nor closed within \(deadline); \(fuzzCase)")
                                return
                            }
                            fuzzCase.note(output: received)
                            let stream = ResponseStream(received)
                            #expect(stream.problem == nil, "\(stream.problem ?? ""); \(fuzzCase)")
                            for response in stream.responses { Self.checkErrorBody(response, fuzzCase) }
                        }
                    }
                    try await connections.waitForAll()
                }
            }

            // One client cannot take the server down: a plain request is still answered.
            let plain = try await LoopbackClient.exchange(
                Array("GET /users/7 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".utf8), port: port,
                deadline: .seconds(10))
            #expect(ResponseStream(plain ?? []).responses.first?.status == 200)
            group.cancelAll()
        }
    }

    // MARK: Harness

    /// What the server did with one input stream.
    struct Outcome {
        var stream: ResponseStream
        var closedBeforeIdle: Bool
        var closedAfterIdle: Bool
    }

    /// Feeds `input` through the server's pipeline in an `EmbeddedChannel`, answering every request it assembles
    /// with ``HTTPServer/respond(to:)``, then lets the idle timeout pass.
    static func serveEmbedded(_ input: [UInt8], _ fuzzCase: inout FuzzCase) async throws -> Outcome {
        // Every timeout is the same, so advancing the clock past it closes an unfinished connection in any state.
        let configuration = HTTPServerConfiguration(
            host: "127.0.0.1", port: 0, maxBodySize: HTTPInputGenerator.maxBodySize,
            maxHeaderSize: HTTPInputGenerator.maxHeaderSize, headTimeout: Self.idleTimeout,
            bodyTimeout: Self.idleTimeout, idleTimeout: Self.idleTimeout)
        let server = HTTPServer(configuration: configuration, router: Self.router(), logger: Self.logger)
        let channel = EmbeddedChannel()
        // The same pipeline as `HTTPServer.bind()` builds for each connection.
        try channel.pipeline.syncOperations.addHandler(RequestBytesObserver())
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = HTTPInputGenerator.maxHeaderSize
        limits.maxHeaderListSize = HTTPInputGenerator.maxHeaderSize
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: true, withErrorHandling: false, withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: limits)
        // Records request heads in the order the decoder produced them, which is the order of the responses
        // (and the one NIO's encoder uses to leave out the body of an answer to HEAD).
        let heads = HeadRecorder()
        let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try channel.pipeline.syncOperations.addHandler(heads, position: .after(decoder))
        try channel.pipeline.syncOperations.addHandler(
            RequestAssemblyHandler(
                limits: ConnectionLimits(configuration), admission: .serve, registry: nil, logger: Self.logger))
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()

        var output: [UInt8] = []
        func drainOutput() throws {
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                output += buffer.readableBytesView
            }
        }
        for chunk in HTTPInputGenerator.chunks(input, &fuzzCase.random) where channel.isActive {
            do {
                try channel.writeInbound(ByteBuffer(bytes: chunk))
            } catch {
                // An error that reaches the end of the pipeline ends the connection (NIOAsyncChannel's stream
                // throws and the connection task closes it).
                channel.close(promise: nil)
                break
            }
            // Answer what was assembled; answering may release a pipelined request, so loop.
            while channel.isActive, let frame = try channel.readInbound(as: AssembledRequest.self) {
                let response = await server.respond(to: frame)
                try channel.writeOutbound(response)
            }
            try drainOutput()
        }
        let closedBeforeIdle = !channel.isActive
        // What is written while the idle timeout closes the connection never reaches a real client.
        channel.embeddedEventLoop.advanceTime(by: TimeAmount(Self.idleTimeout) + .milliseconds(1))
        let closedAfterIdle = !channel.isActive
        fuzzCase.note(output: output)
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return Outcome(
            stream: ResponseStream(output, headRequests: heads.methods.map { $0 == .HEAD }), closedBeforeIdle: closedBeforeIdle,
            closedAfterIdle: closedAfterIdle)
    }

    /// The properties every stream's outcome has.
    static func checkResponses(_ outcome: Outcome, _ fuzzCase: FuzzCase) {
        #expect(outcome.stream.problem == nil, "\(outcome.stream.problem ?? ""); \(fuzzCase)")
        let closedAfterIdle = outcome.closedAfterIdle
        #expect(closedAfterIdle, "the connection is still open after the idle timeout; \(fuzzCase)")
        let closedBeforeIdle = outcome.closedBeforeIdle
        if outcome.stream.responses.last?.header("connection")?.lowercased() == "close" {
            #expect(closedBeforeIdle, "Connection: close was answered but the connection kept; \(fuzzCase)")
        }
        for response in outcome.stream.responses { Self.checkErrorBody(response, fuzzCase) }
    }

    /// Every error response is the server's JSON error shape.
    static func checkErrorBody(_ response: ResponseStream.Response, _ fuzzCase: FuzzCase) {
        guard response.status >= 400, !response.body.isEmpty else { return }
        let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        #expect(
            object?["error"] is String && object?["detail"] is String,
            "a \(response.status) without the JSON error body: \(preview(response.body)); \(fuzzCase)")
    }

    static let logger = Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }

    /// Routes like the services' own: parameters, queries, JSON bodies, every kind of answer.
    static func router() -> Router {
        struct NewUser: Codable {
            var name: String
            var email: String
        }
        struct Failure: Error {}
        var router = Router()
        router.add(.GET, "/users/{id}") { request in
            .json(["id": request.pathParameters["id"] ?? "", "q": request.query["q"] ?? ""])
        }
        router.add(.POST, "/users", acceptsJSON: true) { request in
            .json(try request.decodeJSON(NewUser.self), status: .created)
        }
        router.add(.PUT, "/users/{id}", acceptsJSON: true) { request in
            .json(try request.decodeJSON(NewUser.self))
        }
        router.add(.DELETE, "/users/{id}") { _ in .empty(.noContent) }
        router.add(.GET, "/close") { _ in HTTPResponse(status: .ok, headers: ["connection": "close"], body: [1]) }
        router.add(.GET, "/fail") { _ in throw Failure() }
        router.add(.GET, "/teapot") { _ in
            throw HTTPError(.forbidden, error: "forbidden", detail: "No tea.", headers: ["retry-after": "1"])
        }
        router.add(.GET, "/big") { _ in .text(String(repeating: "b", count: 64 << 10)) }
        router.add(.GET, "/empty") { _ in .empty(.accepted) }
        return router
    }
}

/// Notes the method of every request head that passes.
final class HeadRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private(set) var methods: [HTTPMethod] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = Self.unwrapInboundIn(data) { self.methods.append(head.method) }
        context.fireChannelRead(data)
    }
}

/// A raw TCP client that writes bytes and collects everything the server sends until it closes.
enum LoopbackClient {
    /// Sends `bytes` and returns what came back once the server closed, or nil if it did not close in time.
    static func exchange(_ bytes: [UInt8], port: Int, deadline: Duration) async throws -> [UInt8]? {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let closed = loop.makePromise(of: [UInt8].self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Collector(closed: closed))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        } catch {
            closed.fail(error)
            throw error
        }
        channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
        return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask { try await closed.futureResult.get() }
            group.addTask {
                try await Task.sleep(for: deadline)  // a deadline, not synchronisation
                return nil
            }
            let first = try await group.next()!
            if first == nil { channel.close(promise: nil) }  // lets the other task finish
            group.cancelAll()
            return first
        }
    }

    /// Collects inbound bytes and hands them over when the connection closes.
    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        private var received: [UInt8] = []
        private let closed: EventLoopPromise<[UInt8]>

        init(closed: EventLoopPromise<[UInt8]>) {
            self.closed = closed
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.received += Self.unwrapInboundIn(data).readableBytesView
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.closed.succeed(self.received)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)  // a reset counts as closed
        }
    }
}
