import Foundation
import HTTPServer
import Synchronization
import Logging
import NIOCore
import NIOPosix
import Testing

/// A response as read off the wire by ``RawConnection``.
struct RawResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    func header(_ name: String) -> String? {
        self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

struct RawClientError: Error, CustomStringConvertible {
    var description: String
}

/// One TCP connection that writes raw bytes and parses responses by hand, so tests control exactly what the
/// server receives (garbage, pipelined requests, oversized bodies).
struct RawConnection {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    /// The underlying channel, to await its closing.
    let channel: any Channel
    private var buffer: [UInt8] = []

    fileprivate init(
        iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, channel: any Channel
    ) {
        self.iterator = iterator
        self.outbound = outbound
        self.channel = channel
    }

    func send(_ text: String) async throws {
        try await self.outbound.write(ByteBuffer(string: text))
    }

    /// Reads more bytes; `false` at end of stream (a reset counts as the end too).
    private mutating func fill() async throws -> Bool {
        do {
            guard let chunk = try await self.iterator.next() else { return false }
            self.buffer.append(contentsOf: chunk.readableBytesView)
            return true
        } catch let error as IOError where error.errnoCode == ECONNRESET {
            return false
        }
    }

    /// Reads one complete response (the server always sends Content-Length).
    mutating func readResponse() async throws -> RawResponse {
        try await self.readResponse(withBody: true)
    }

    /// Reads only a response head, for responses whose announced body is not sent (HEAD).
    mutating func readResponseIgnoringLength() async throws -> RawResponse {
        try await self.readResponse(withBody: false)
    }

    private mutating func readResponse(withBody: Bool) async throws -> RawResponse {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while true {
            if self.buffer.count >= 4,
                let index = (0...(self.buffer.count - 4)).first(where: { Array(self.buffer[$0..<$0 + 4]) == separator })
            {
                headEnd = index
                break
            }
            guard try await self.fill() else {
                throw RawClientError(description: "connection closed before a response")
            }
        }
        let head = String(decoding: self.buffer[..<headEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw RawClientError(description: "bad status line in \(head)")
        }
        let headers = lines.map { line -> (name: String, value: String) in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
        }
        var response = RawResponse(status: status, headers: headers, body: "")
        self.buffer.removeFirst(headEnd! + 4)
        guard withBody else { return response }
        guard let length = response.header("content-length").flatMap({ Int($0) }) else {
            throw RawClientError(description: "no Content-Length in \(head)")
        }
        while self.buffer.count < length {
            guard try await self.fill() else { throw RawClientError(description: "connection closed in a body") }
        }
        response.body = String(decoding: self.buffer[..<length], as: UTF8.self)
        self.buffer.removeFirst(length)
        return response
    }

    /// True when the server closes the connection without sending anything more.
    mutating func closesWithoutData() async throws -> Bool {
        while try await self.fill() {}
        return self.buffer.isEmpty
    }
}

/// Opens a connection to `127.0.0.1:port` and hands it to `body`; closes it afterwards.
func withConnection<R>(port: Int, _ body: (inout RawConnection) async throws -> R) async throws -> R {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await channel.executeThenClose { inbound, outbound in
        var connection = RawConnection(
            iterator: inbound.makeAsyncIterator(), outbound: outbound, channel: channel.channel)
        return try await body(&connection)
    }
}

/// One request on a fresh connection.
func request(port: Int, _ text: String) async throws -> RawResponse {
    try await withConnection(port: port) { try await $0.readResponseAfterSending(text) }
}

extension RawConnection {
    mutating func readResponseAfterSending(_ text: String) async throws -> RawResponse {
        try await self.send(text)
        return try await self.readResponse()
    }
}

let testLogger: Logger = {
    var logger = Logger(label: "HTTPServerTests")
    logger.logLevel = .critical
    return logger
}()

/// Runs a server on a free port of 127.0.0.1 for the duration of `body`, then cancels it.
func withServer(
    _ configuration: HTTPServerConfiguration = HTTPServerConfiguration(host: "127.0.0.1", port: 0),
    router: Router, logger: Logger = testLogger, _ body: (_ port: Int) async throws -> Void
) async throws {
    let server = HTTPServer(configuration: configuration, router: router, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        let port = try await server.listeningPort()
        try await body(port)
        group.cancelAll()
        do {
            try await group.waitForAll()
        } catch is CancellationError {}
    }
}

/// Waits for `future` or fails after `seconds`: a deadline, not a synchronisation sleep.
func waitWithDeadline(_ future: EventLoopFuture<Void>, seconds: Int64) async throws {
    try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            // Not `future.get()`: it ignores cancellation, so the group would wait for the future after the deadline.
            let (results, continuation) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
            future.whenComplete { result in
                continuation.yield(result)
                continuation.finish()
            }
            for await result in results {
                try result.get()
                return true
            }
            return false  // cancelled: the deadline passed
        }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return false
        }
        let completed = try await group.next()!
        group.cancelAll()
        if !completed {
            throw RawClientError(description: "deadline of \(seconds) s passed")
        }
    }
}

/// Opens `count` TCP connections to `127.0.0.1:port` that send nothing; the caller closes them.
func openConnections(_ count: Int, port: Int) async throws -> [any Channel] {
    var channels: [any Channel] = []
    channels.reserveCapacity(count)
    do {
        for _ in 0..<count {
            channels.append(
                try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: "127.0.0.1", port: port).get())
        }
    } catch {
        for channel in channels { channel.close(promise: nil) }
        throw error
    }
    return channels
}

/// A logger whose lines are kept for the test to read.
final class LogCapture: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
    }

    private let storage = Mutex<[Line]>([])

    var lines: [Line] { self.storage.withLock { $0 } }

    var logger: Logger {
        Logger(label: "capture") { _ in Handler(capture: self) }
    }

    fileprivate func append(_ line: Line) { self.storage.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            self.capture.append(Line(level: event.level, message: "\(event.message)"))
        }
    }
}
