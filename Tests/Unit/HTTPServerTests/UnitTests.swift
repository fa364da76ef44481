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
    private func makeChannel(maxBodySize: Int = 16) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            RequestAssemblyHandler(
                maxBodySize: maxBodySize, maxHeaderSize: 1024, idleTimeout: .seconds(1), logger: testLogger))
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

    @Test func idleTimerClosesTheConnection() throws {
        let channel = try makeChannel()
        let loop = channel.embeddedEventLoop
        loop.advanceTime(by: .milliseconds(900))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
    }
}
