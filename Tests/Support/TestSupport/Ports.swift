import Glibc

/// A free TCP port on the loopback interface (bound and released; good enough for tests).
public func freePort() throws -> Int {
    let (descriptor, port) = try bindLoopback()
    close(descriptor)
    return port
}

/// A TCP socket on 127.0.0.1 that listens and never accepts: the kernel completes connects, nobody answers.
/// For tests of a peer that hangs in its handshake. Open until ``close()``.
public struct SilentListener: Sendable {
    private let descriptor: Int32
    /// The port it listens on.
    public let port: Int

    /// Binds a free port and listens on it.
    public init() throws {
        (descriptor, port) = try bindLoopback()
        guard listen(descriptor, 16) == 0 else {
            let error = errno
            Glibc.close(descriptor)
            throw TestFailure("listen() failed: errno \(error)")
        }
    }

    /// Closes the socket: connects are refused from now on.
    public func close() {
        _ = Glibc.close(descriptor)
    }
}

/// A TCP socket bound to a free port on 127.0.0.1, and that port.
private func bindLoopback() throws -> (descriptor: Int32, port: Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw TestFailure("socket() failed: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else {
        let error = errno
        close(descriptor)
        throw TestFailure("bind() failed: errno \(error)")
    }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}
