import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an exchange produced no HTTP status.
enum TransportError: Error, Sendable {
    case connect(Int32)
    case write(Int32)
    case read(Int32)
    case closedByPeer
    case malformedResponse

    /// A short key for the error counts in the report.
    var key: String {
        switch self {
        case .connect: "connect"
        case .write: "write"
        case .read: "read"
        case .closedByPeer: "closed"
        case .malformedResponse: "malformed"
        }
    }
}

/// One HTTP/1.1 keep-alive connection to `127.0.0.1:port` with blocking POSIX sockets, used by one thread:
/// write a complete request, read the status line, headers and `Content-Length` body. Reconnects lazily after the
/// server closed or an error.
final class BlockingHTTPConnection {
    private let port: Int
    private var descriptor: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    /// Connections opened, including the first.
    private(set) var connects = 0

    init(port: Int) {
        self.port = port
    }

    deinit {
        close()
    }

    func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
    }

    private func connect() throws(TransportError) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .connect(errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            _ = Glibc.close(fd)
            throw .connect(error)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        // A server that stops answering must not hang the benchmark.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        descriptor = fd
        connects += 1
    }

    /// Sends `request` and returns the response's status once its whole body has arrived. On an error the
    /// connection is closed (the next call reconnects) and the error is thrown.
    func exchange(_ request: [UInt8]) throws(TransportError) -> Int {
        do {
            if descriptor < 0 { try connect() }
            try send(request)
            let head = try receive()
            if head.closes { close() }
            return head.status
        } catch {
            close()
            throw error
        }
    }

    private func send(_ request: [UInt8]) throws(TransportError) {
        var sent = 0
        let error: TransportError? = request.withUnsafeBytes { bytes in
            while sent < bytes.count {
                let count = Glibc.send(descriptor, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
                if count < 0 {
                    if errno == EINTR { continue }
                    return .write(errno)
                }
                sent += count
            }
            return nil
        }
        if let error { throw error }
    }

    /// Reads one response; returns its head.
    private func receive() throws(TransportError) -> ResponseHead {
        var filled = 0
        var headEnd: Int?
        var scanned = 0
        var head: ResponseHead?
        var total = Int.max
        while filled < total {
            if filled == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
            let count = buffer.withUnsafeMutableBytes { bytes in
                recv(descriptor, bytes.baseAddress! + filled, bytes.count - filled, 0)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .read(errno)
            }
            if count == 0 { throw .closedByPeer }
            filled += count
            if headEnd == nil {
                headEnd = buffer.withUnsafeBytes { bytes -> Int? in
                    var index = max(0, scanned - 3)
                    while index + 3 < filled {
                        if bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 {
                            return index
                        }
                        index += 1
                    }
                    return nil
                }
                scanned = filled
                if let end = headEnd {
                    head = buffer.withUnsafeBytes { ResponseHead.parse(UnsafeRawBufferPointer(rebasing: $0[0..<end])) }
                    guard let parsed = head, !parsed.chunked else { throw .malformedResponse }
                    // Without Content-Length a keep-alive response has no body (all this server sends has one).
                    total = end + 4 + (parsed.contentLength ?? 0)
                }
            }
        }
        guard let head else { throw .malformedResponse }
        return head
    }
}
