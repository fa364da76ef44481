import Foundation
@testable import HTTPServer
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

struct RouterTests {
    @Test func literalSegmentsBeatParametersWhateverTheOrder() {
        var router = Router()
        router.add(.GET, "/users/{id}") { _ in .empty(.ok) }
        router.add(.GET, "/users/me") { _ in .empty(.ok) }
        router.add(.PUT, "/users/{id}/") { _ in .empty(.ok) }
        guard case .found(let route, let parameters) = router.match(.GET, segments: ["users", "me"]) else {
            Issue.record("no match")
            return
        }
        #expect(route.pattern == "/users/me")
        #expect(parameters.isEmpty)
        guard case .found(let put, let putParameters) = router.match(.PUT, segments: ["users", "7"]) else {
            Issue.record("no match")
            return
        }
        #expect(put.pattern == "/users/{id}/")
        #expect(putParameters == ["id": "7"])
        #expect(router.routes.map { "\($0.method.rawValue) \($0.pattern)" }
            == ["GET /users/{id}", "GET /users/me", "PUT /users/{id}/"])
    }

    @Test func segmentsAreSplitBeforeDecoding() {
        #expect(HTTPRequest.segments(ofTarget: "/files/a%2Fb/c?x=/y") == ["files", "a/b", "c"])
        #expect(HTTPRequest.segments(ofTarget: "/bad/%zz") == nil)
    }
}

struct DecodeJSONTests {
    struct Order: Decodable {
        struct Line: Decodable {
            var sku: String
            var quantity: Int
        }
        var lines: [Line]
    }

    private func detail(_ body: String) -> String? {
        let request = HTTPRequest(method: .POST, path: "/", body: Array(body.utf8))
        do {
            _ = try request.decodeJSON(Order.self)
            return nil
        } catch let error as HTTPError {
            #expect(error.status == .unprocessableEntity)
            #expect(error.error == "invalid_body")
            return error.detail
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test func detailNamesTheField() {
        #expect(detail(#"{"lines":[{"sku":"a"}]}"#) == "Missing field 'lines[0].quantity'.")
        #expect(detail(#"{"lines":[{"sku":"a","quantity":"two"}]}"#)?.contains("'lines[0].quantity'") == true)
        #expect(detail(#"{"lines":null}"#)?.contains("'lines'") == true)
        #expect(detail("not json") == "The request body is not valid JSON.")
        #expect(detail("")?.contains("empty") == true)
    }
}

struct RequestAssemblyHandlerTests {
    private func makeChannel(
        maxBodySize: Int = 16, admission: ConnectionRegistry.Admission = .serve
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let limits = ConnectionLimits(
            maxBodySize: maxBodySize, maxHeaderSize: 1024, headTimeout: .seconds(1), bodyTimeout: .seconds(2),
            idleTimeout: .seconds(10), writeTimeout: .seconds(10))
        try channel.pipeline.syncOperations.addHandler(RequestBytesObserver())
        try channel.pipeline.syncOperations.addHandler(
            RequestAssemblyHandler(limits: limits, admission: admission, registry: nil, logger: testLogger))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func assemblesBodyAndWritesContentLength() throws {
        let channel = try makeChannel()
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/x")
        try channel.writeInbound(HTTPServerRequestPart.head(head))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "abc")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        let request = try #require(try channel.readInbound(as: AssembledRequest.self))
        #expect(String(buffer: request.body) == "abc")

        try channel.writeOutbound(HTTPResponse.text("hello"))
        guard case .head(let responseHead) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("expected a head")
            return
        }
        #expect(responseHead.headers["content-length"] == ["5"])
        #expect(responseHead.headers["connection"].isEmpty)
        #expect(channel.isActive)
    }

    @Test func streamedBodyOverLimitIs413() throws {
        let channel = try makeChannel(maxBodySize: 4)
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")
        try channel.writeInbound(HTTPServerRequestPart.head(head))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "abc")))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "def")))
        guard case .head(let responseHead) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("expected a head")
            return
        }
        #expect(responseHead.status == .payloadTooLarge)
        #expect(responseHead.headers["connection"] == ["close"])
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
    }

    /// A new connection must complete its head within the head timeout, counted from the accept.
    @Test func headTimerRunsFromTheAccept() throws {
        let channel = try makeChannel()
        let loop = channel.embeddedEventLoop
        loop.advanceTime(by: .milliseconds(900))
        #expect(channel.isActive)
        // Bytes of a head that never completes do not extend it.
        channel.pipeline.fireUserInboundEventTriggered(RequestBytesArrived())
        loop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
    }

    /// After a response a kept-alive connection may stay idle for the (longer) idle timeout; once its next request
    /// starts, the head must follow within the head timeout.
    @Test func keptAliveConnectionGetsIdleTimeoutThenHeadTimeout() throws {
        let channel = try makeChannel()
        let loop = channel.embeddedEventLoop
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        _ = try channel.readInbound(as: AssembledRequest.self)
        try channel.writeOutbound(HTTPResponse.text("ok"))
        loop.advanceTime(by: .seconds(9))
        #expect(channel.isActive, "idle keep-alive is bounded by the idle timeout (10 s), not the head timeout (1 s)")
        channel.pipeline.fireUserInboundEventTriggered(RequestBytesArrived())
        loop.advanceTime(by: .milliseconds(900))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive, "a started head must complete within the head timeout")
    }

    @Test func idleTimerClosesAKeptAliveConnection() throws {
        let channel = try makeChannel()
        let loop = channel.embeddedEventLoop
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        try channel.writeOutbound(HTTPResponse.text("ok"))
        loop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive)
    }

    @Test func bodyMustCompleteWithinTheBodyTimeout() throws {
        let channel = try makeChannel()
        let loop = channel.embeddedEventLoop
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")))
        loop.advanceTime(by: .milliseconds(1500))
        #expect(channel.isActive, "the head timer stopped with the head")
        loop.advanceTime(by: .milliseconds(600))
        #expect(!channel.isActive)
    }

    @Test func refusedConnectionAnswers503WithRetryAfter() throws {
        let channel = try makeChannel(admission: .refuse)
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
        guard case .head(let head) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("expected a head")
            return
        }
        #expect(head.status == .serviceUnavailable)
        #expect(head.headers["retry-after"] == ["1"])
        #expect(head.headers["connection"] == ["close"])
        #expect(head.headers["content-type"] == ["application/json"])
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
    }

    @Test func droppedConnectionClosesAtOnce() throws {
        let channel = try makeChannel(admission: .drop)
        #expect(!channel.isActive)
    }
}

struct ConnectionBudgetTests {
    @Test func servedAndRefusedFitUnderTheFileLimit() {
        for limit in [nil, 1 << 20] {
            let budget = ConnectionBudget.split(configured: 1024, fileDescriptors: limit)
            #expect(budget.served == 1024 && budget.refusing == 64)
        }
        for limit in [256, 1024, 1100, 4096] {
            let (served, refusing) = ConnectionBudget.split(configured: 100_000, fileDescriptors: limit)
            #expect(served > 0 && refusing > 0)
            #expect(served + refusing <= max(17, limit - ConnectionBudget.reserved), "limit \(limit)")
        }
    }
}

struct ConnectionRegistryTests {
    @Test func evictsTheLongestIdleAndRefusesWhenAllAreBusy() throws {
        let registry = ConnectionRegistry(maxServed: 2, maxRefusing: 1, logger: testLogger)
        let first = EmbeddedChannel()
        let second = EmbeddedChannel()
        #expect(registry.admit(first) == .serve)
        #expect(registry.admit(second) == .serve)
        registry.markBusy(second)
        // Full: the idle one (first) makes room.
        let third = EmbeddedChannel()
        #expect(registry.admit(third) == .serve)
        let served = Set(registry.servedChannels.map { ObjectIdentifier($0) })
        #expect(served == [ObjectIdentifier(second), ObjectIdentifier(third)])
        registry.markBusy(third)
        // Every served connection is busy: refuse one, then drop.
        #expect(registry.admit(EmbeddedChannel()) == .refuse)
        #expect(registry.admit(EmbeddedChannel()) == .drop)
        // An answered connection becomes evictable again.
        registry.markIdle(second)
        #expect(registry.admit(EmbeddedChannel()) == .serve)
        #expect(!registry.servedChannels.contains { $0 === second })
    }
}
