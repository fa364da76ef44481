internal import CRabbitMQ

/// An error from the messaging layer: a stable ``Code`` to branch on and a human-readable detail.
public struct MessagingError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, extendable without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case connectionLost, nacked, unroutable, notConnected, closed, protocolError, invalidConfiguration
            case heartbeatTimeout, brokerClosed, tlsError, timeout, unencodable, queueConflict
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The connection dropped before the operation finished; for publishes the broker may have some messages.
        public static let connectionLost = Code(.connectionLost)
        /// The broker refused a message with `basic.nack`.
        public static let nacked = Code(.nacked)
        /// A mandatory message came back with `basic.return`: no queue matched its routing key.
        public static let unroutable = Code(.unroutable)
        /// The broker could not be reached or refused the login.
        public static let notConnected = Code(.notConnected)
        /// The publisher or consumer has stopped (or stops before the operation could run).
        public static let closed = Code(.closed)
        /// The broker or the library saw a protocol violation or an unexpected frame.
        public static let protocolError = Code(.protocolError)
        /// A configuration value (such as the broker URL) is invalid.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// No traffic from the broker for two heartbeat intervals.
        public static let heartbeatTimeout = Code(.heartbeatTimeout)
        /// The broker closed the channel or connection with an error (`channel.close` / `connection.close`).
        public static let brokerClosed = Code(.brokerClosed)
        /// TLS handshake or certificate verification failed.
        public static let tlsError = Code(.tlsError)
        /// A broker round trip did not answer in time.
        public static let timeout = Code(.timeout)
        /// The message cannot be carried by AMQP (a short string over 255 bytes, properties larger than the frame, a
        /// body over the broker's limit): its publish call failed before anything was sent; the connection is fine.
        public static let unencodable = Code(.unencodable)
        /// A queue exists with another type or other arguments than declared (`queue.declare` answered 406
        /// PRECONDITION_FAILED). Retrying cannot help: a connection that meets it while setting up stops.
        public static let queueConflict = Code(.queueConflict)

        /// The code's name, e.g. `connectionLost`.
        public var description: String { value.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// Details for logs: the library status, the broker's reply text, the queue involved.
    public var detail: String

    /// Creates an error with a code and a detail.
    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// `code: detail`.
    public var description: String { "\(code): \(detail)" }
}

extension MessagingError {
    /// Maps a negative `AMQP_STATUS_*` value from rabbitmq-c to an error.
    init(status: Int32, while action: String) {
        let text = String(cString: amqp_error_string2(status))
        let code: Code
        switch amqp_status_enum(rawValue: status) {
        case AMQP_STATUS_CONNECTION_CLOSED, AMQP_STATUS_SOCKET_CLOSED, AMQP_STATUS_SOCKET_ERROR, AMQP_STATUS_TCP_ERROR:
            code = .connectionLost
        case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED, AMQP_STATUS_TCP_SOCKETLIB_INIT_ERROR,
            AMQP_STATUS_BROKER_UNSUPPORTED_SASL_METHOD, AMQP_STATUS_INCOMPATIBLE_AMQP_VERSION:
            code = .notConnected
        case AMQP_STATUS_HEARTBEAT_TIMEOUT:
            code = .heartbeatTimeout
        case AMQP_STATUS_TIMEOUT:
            code = .timeout
        case AMQP_STATUS_SSL_ERROR, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED, AMQP_STATUS_SSL_PEER_VERIFY_FAILED,
            AMQP_STATUS_SSL_CONNECTION_FAILED, AMQP_STATUS_SSL_SET_ENGINE_FAILED:
            code = .tlsError
        default:
            code = .protocolError
        }
        self.init(code, "\(action): \(text) (status \(status))")
    }

    /// Maps an RPC reply (library error or broker exception) to an error.
    init(reply: amqp_rpc_reply_t, while action: String) {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            self.init(status: reply.library_error, while: action)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            self.init(.brokerClosed, "\(action): \(BrokerClose(method: reply.reply).description)")
        case AMQP_RESPONSE_NONE:
            self.init(.connectionLost, "\(action): the broker closed the socket")
        default:
            self.init(.protocolError, "\(action): unexpected reply type \(reply.reply_type.rawValue)")
        }
    }
}

/// A `channel.close` or `connection.close` from the broker, copied out of the library's buffers.
struct BrokerClose: CustomStringConvertible, Sendable {
    var isConnection: Bool
    var replyCode: UInt16
    var replyText: String

    init(isConnection: Bool, replyCode: UInt16, replyText: String) {
        self.isConnection = isConnection
        self.replyCode = replyCode
        self.replyText = replyText
    }

    init(method: amqp_method_t) {
        switch method.id {
        case AMQP_CONNECTION_CLOSE_METHOD:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            isConnection = true
            replyCode = close.reply_code
            replyText = String(amqpBytes: close.reply_text)
        case AMQP_CHANNEL_CLOSE_METHOD:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            isConnection = false
            replyCode = close.reply_code
            replyText = String(amqpBytes: close.reply_text)
        default:
            isConnection = false
            replyCode = 0
            replyText = "unexpected method 0x\(String(method.id, radix: 16))"
        }
    }

    var description: String {
        "broker closed the \(isConnection ? "connection" : "channel"): \(replyCode) \(replyText)"
    }
}

extension String {
    /// Decodes UTF-8 bytes owned by rabbitmq-c (copies them).
    init(amqpBytes bytes: amqp_bytes_t) {
        guard bytes.len > 0, let base = bytes.bytes else {
            self = ""
            return
        }
        let buffer = UnsafeRawBufferPointer(start: base, count: bytes.len)
        self = String(decoding: buffer, as: UTF8.self)
    }
}
