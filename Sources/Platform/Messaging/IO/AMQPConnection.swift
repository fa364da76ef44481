internal import CRabbitMQ
// Which clang module owns `timeval` depends on the order in which modules load; on Linux it can be CDispatch (through
// Foundation), and MemberImportVisibility then wants that module imported to use its fields.
#if canImport(CDispatch)
internal import CDispatch
#endif
import Foundation
import Logging

/// One rabbitmq-c connection with channel 1 open: the one wrapper of the C API. rabbitmq-c is not thread-safe: an
/// instance is created, used and destroyed by the one connection thread that owns it (see ``ConnectionDriver``),
/// never shared.
final class AMQPConnection {
    /// The only channel this layer opens.
    static let channel: amqp_channel_t = 1
    private static let frameMax = Int32(AMQPLimits.frameMax)
    private static let socketTimeout = seconds(10)
    private static let rpcTimeout = seconds(10)

    private static func seconds(_ seconds: Int) -> timeval { timeval(tv_sec: seconds, tv_usec: 0) }

    private let state: amqp_connection_state_t
    /// Scratch memory for outgoing properties and tables; recycled after every call that uses it.
    private let scratch: UnsafeMutablePointer<amqp_pool_t>
    private var isOpen = true
    /// Heartbeat interval the broker agreed to, in seconds (0 = off).
    private(set) var heartbeatSeconds: Int32 = 0

    private init(state: amqp_connection_state_t) {
        self.state = state
        scratch = .allocate(capacity: 1)
        init_amqp_pool(scratch, 4096)
    }

    deinit {
        if isOpen { amqp_destroy_connection(state) }
        empty_amqp_pool(scratch)
        scratch.deallocate()
    }

    /// Opens the socket (TCP or TLS), logs in and opens channel 1. Blocks for at most a few socket timeouts.
    static func open(_ configuration: BrokerConfiguration) throws(MessagingError) -> AMQPConnection {
        guard let state = amqp_new_connection() else {
            throw MessagingError(.notConnected, "amqp_new_connection failed (out of memory)")
        }
        let connection = AMQPConnection(state: state)
        try connection.connect(configuration)
        return connection
    }

    private func connect(_ configuration: BrokerConfiguration) throws(MessagingError) {
        let socket: OpaquePointer
        if configuration.useTLS {
            socket = try makeTLSSocket(configuration)
        } else {
            guard let tcp = amqp_tcp_socket_new(state) else {
                throw MessagingError(.notConnected, "could not create a socket")
            }
            socket = tcp
        }

        var timeout = Self.socketTimeout
        let openStatus = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
        if openStatus != AMQP_STATUS_OK.rawValue {
            var error = MessagingError(status: openStatus, while: "connecting")
            if error.code == .connectionLost || error.code == .protocolError { error.code = .notConnected }
            if error.code == .tlsError { error = Self.explainTLSFailure(openStatus, configuration) }
            throw error
        }
        var rpcTimeout = Self.rpcTimeout
        _ = amqp_set_rpc_timeout(state, &rpcTimeout)

        let heartbeat = configuration.heartbeat
        let requestedHeartbeat =
            heartbeat <= .zero ? 0 : Int32(clamping: max(1, heartbeat.components.seconds))
        let reply = withClientProperties(connectionName: configuration.connectionName) { properties in
            swift_amqp_login_plain(
                state, configuration.virtualHost, 0, Self.frameMax, requestedHeartbeat, properties,
                configuration.user, configuration.password)
        }
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            var error = MessagingError(reply: reply, while: "logging in as \(configuration.user)")
            if error.code == .tlsError {
                // TLS 1.3 finishes the client's side of the handshake before the broker checks the client
                // certificate, so the broker's refusal (a TLS alert) only shows on the first read, here.
                error.detail +=
                    " (the broker ended TLS during login: did it require a client certificate"
                    + " (AMQP_CLIENT_CERT, AMQP_CLIENT_KEY) or refuse the one sent?)"
            } else if error.code == .connectionLost {
                // RabbitMQ closes the socket on a bad vhost or credentials before any close method.
                error = MessagingError(.notConnected, error.detail + " (wrong credentials or vhost?)")
            }
            throw error
        }
        heartbeatSeconds = amqp_get_heartbeat(state)

        amqp_channel_open(state, Self.channel)
        try checkReply("opening channel")
    }

    /// An `amqps` socket that verifies the broker's certificate chain and host name (never turned off), trusting
    /// the configured CA file or else OpenSSL's default store, and presenting the client certificate if configured.
    private func makeTLSSocket(_ configuration: BrokerConfiguration) throws(MessagingError) -> OpaquePointer {
        guard let socket = amqp_ssl_socket_new(state) else {
            throw MessagingError(.tlsError, "could not create a TLS socket (OpenSSL failed to initialise)")
        }
        amqp_ssl_socket_set_verify_peer(socket, 1)
        amqp_ssl_socket_set_verify_hostname(socket, 1)
        if let path = configuration.caCertificatePath {
            guard amqp_ssl_socket_set_cacert(socket, path) == AMQP_STATUS_OK.rawValue else {
                throw MessagingError(.tlsError, "could not load CA certificates from '\(path)' (not a PEM file?)")
            }
        } else if swift_amqp_ssl_socket_use_default_ca(socket) != 1 {
            throw MessagingError(.tlsError, "could not load OpenSSL's default CA certificates")
        }
        switch (configuration.clientCertificatePath, configuration.clientKeyPath) {
        case (let certificate?, let key?):
            guard amqp_ssl_socket_set_key(socket, certificate, key) == AMQP_STATUS_OK.rawValue else {
                throw MessagingError(
                    .tlsError,
                    "could not load the client certificate '\(certificate)' with key '\(key)'"
                        + " (not PEM, an encrypted key, or a key that does not match the certificate?)")
            }
        case (nil, nil):
            break
        default:
            throw MessagingError(
                .invalidConfiguration, "a client certificate and its key must be configured together")
        }
        return socket
    }

    /// A failed TLS handshake as a sentence that says what to check.
    private static func explainTLSFailure(_ status: Int32, _ configuration: BrokerConfiguration) -> MessagingError {
        let peer = "\(configuration.host):\(configuration.port)"
        let trusted = configuration.caCertificatePath.map { "the CA file '\($0)'" } ?? "the default trust store"
        let explanation: String
        switch amqp_status_enum(rawValue: status) {
        case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
            explanation = "the broker's certificate is not signed by a CA in \(trusted) (or has expired)"
        case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
            explanation = "the broker's certificate is not valid for the host name '\(configuration.host)'"
        case AMQP_STATUS_SSL_CONNECTION_FAILED:
            explanation =
                "the handshake failed: is \(peer) a TLS port, and does the broker accept our client certificate?"
                + " Or its certificate is not signed by a CA in \(trusted)"
        default:
            explanation = "TLS failed"
        }
        let library = String(cString: amqp_error_string2(status))
        return MessagingError(.tlsError, "TLS connection to \(peer): \(explanation) (\(library), status \(status))")
    }

    /// The socket to `poll()`.
    var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Whether frames are already decoded or bytes already read, so that `poll()` would not report them.
    var hasBufferedInput: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    // MARK: - Synchronous methods (RPCs)

    /// `queue.declare`: durable, not exclusive, not auto-delete; no arguments for a classic queue (as the original
    /// system declared them), `x-queue-type: quorum` for a quorum queue. Returns the messages ready in it. A name AMQP
    /// cannot carry fails with `.invalidConfiguration` before anything is sent; a 406 (the queue exists with another
    /// type or other arguments) throws `.queueConflict` with a sentence that says what to do.
    @discardableResult
    func declareQueue(_ name: String, type: QueueType) throws(MessagingError) -> Int {
        guard name.utf8.count <= AMQPLimits.shortStringBytes else {
            throw MessagingError(
                .invalidConfiguration,
                "queue name '\(AMQPLimits.truncating(name, toBytes: 80))' is \(name.utf8.count) bytes"
                    + " (at most \(AMQPLimits.shortStringBytes))")
        }
        var ready = 0
        withScratch {
            let arguments = type == .classic ? emptyTable : scratchTable([("x-queue-type", .string(type.rawValue))])
            let ok = amqp_queue_declare(state, Self.channel, scratchBytes(name), 0, 1, 0, 0, arguments)
            if let ok { ready = Int(ok.pointee.message_count) }
        }
        let reply = amqp_get_rpc_reply(state)
        if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD {
            let close = BrokerClose(method: reply.reply)
            if close.replyCode == 406 {
                replyCloseOk(isConnection: false)
                throw QueueConflict(queue: name, declared: type, brokerText: close.replyText).error
            }
        }
        try checkReply("declaring queue '\(name)'")
        return ready
    }

    /// `confirm.select`: the broker will ack or nack every publish on the channel, numbered from 1.
    func selectConfirms() throws(MessagingError) {
        amqp_confirm_select(state, Self.channel)
        try checkReply("enabling publisher confirms")
    }

    /// `basic.qos` with a per-consumer prefetch count.
    func setPrefetch(_ count: UInt16) throws(MessagingError) {
        amqp_basic_qos(state, Self.channel, 0, count, 0)
        try checkReply("setting prefetch")
    }

    /// `basic.consume` with manual acks; returns the consumer tag the broker chose.
    func consume(queue: String) throws(MessagingError) -> String {
        var tag = ""
        withScratch {
            let ok = amqp_basic_consume(
                state, Self.channel, scratchBytes(queue), amqp_bytes_t(len: 0, bytes: nil), 0, 0, 0, emptyTable)
            if let ok { tag = String(amqpBytes: ok.pointee.consumer_tag) }
        }
        try checkReply("consuming from '\(queue)'")
        return tag
    }

    private func checkReply(_ action: String) throws(MessagingError) {
        let reply = amqp_get_rpc_reply(state)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION {
                replyCloseOk(isConnection: reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD)
            }
            throw MessagingError(reply: reply, while: action)
        }
    }

    // MARK: - Asynchronous methods

    /// `basic.publish` to the default exchange with `mandatory` set. Returns an error for a message that AMQP cannot
    /// carry in this connection's frame size (checked before anything is sent: the connection is fine); throws if the
    /// connection failed. rabbitmq-c writes the method frame before it encodes the properties, so any failure once it
    /// was called leaves a partial message on the wire: that is a lost connection, never "nothing was sent".
    func publish(_ message: OutboundMessage) throws(MessagingError) -> MessagingError? {
        if let refusal = message.unencodableError(frameMax: negotiatedFrameMax) { return refusal }
        var status: Int32 = 0
        withScratch {
            var properties = encode(message.properties)
            let routingKey = scratchBytes(message.queue)
            status = message.body.withUnsafeBytes { body in
                let bodyBytes = amqp_bytes_t(
                    len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress))
                return amqp_basic_publish(
                    state, Self.channel, amqp_bytes_t(len: 0, bytes: nil), routingKey, 1, 0, &properties, bodyBytes)
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            var error = MessagingError(status: status, while: "publishing to '\(message.queue)'")
            error.code = .connectionLost
            throw error
        }
        return nil
    }

    /// The frame size agreed at login.
    var negotiatedFrameMax: Int { Int(amqp_get_frame_max(state)) }

    /// `basic.ack`.
    func ack(deliveryTag: UInt64, multiple: Bool) throws(MessagingError) {
        let status = amqp_basic_ack(state, Self.channel, deliveryTag, multiple ? 1 : 0)
        if status != AMQP_STATUS_OK.rawValue { throw MessagingError(status: status, while: "acking") }
    }

    /// `basic.reject`.
    func reject(deliveryTag: UInt64, requeue: Bool) throws(MessagingError) {
        let status = amqp_basic_reject(state, Self.channel, deliveryTag, requeue ? 1 : 0)
        if status != AMQP_STATUS_OK.rawValue { throw MessagingError(status: status, while: "rejecting") }
    }

    /// `basic.cancel` without waiting: the broker's `cancel-ok` arrives as a frame, after any deliveries it sent
    /// before it.
    func sendCancel(consumerTag: String) throws(MessagingError) {
        var status: Int32 = 0
        withScratch {
            var cancel = amqp_basic_cancel_t(consumer_tag: scratchBytes(consumerTag), nowait: 0)
            status = amqp_send_method(state, Self.channel, AMQP_BASIC_CANCEL_METHOD, &cancel)
        }
        if status != AMQP_STATUS_OK.rawValue { throw MessagingError(status: status, while: "cancelling consumer") }
    }

    // MARK: - Reading

    /// The next frame if one is complete without waiting; `nil` if there is none. The content that follows a
    /// `basic.deliver` or `basic.return` is read with it. Also sends due heartbeats and detects missed ones
    /// (rabbitmq-c does both only inside its wait calls).
    func nextFrame() throws(MessagingError) -> IncomingFrame? {
        var frame = amqp_frame_t()
        var zero = Self.seconds(0)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &zero)
        if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        if status != AMQP_STATUS_OK.rawValue { throw MessagingError(status: status, while: "reading") }
        defer { amqp_maybe_release_buffers(state) }
        switch ReceivedMethod(frame) {
        case .deliver(let tag, let redelivered):
            let content = try readContent()
            return .deliver(
                deliveryTag: tag, redelivered: redelivered, body: content.body, properties: content.properties)
        case .returned(let routingKey, let replyCode, let replyText):
            _ = try readContent()
            return .returned(routingKey: routingKey, replyCode: replyCode, replyText: replyText)
        case .frame(let frame):
            return frame
        }
    }

    /// Reads the content (header and body frames) that follows `basic.deliver` or `basic.return`.
    private func readContent() throws(MessagingError) -> (body: [UInt8], properties: MessageProperties) {
        var message = amqp_message_t()
        let reply = amqp_read_message(state, Self.channel, &message, 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            throw MessagingError(reply: reply, while: "reading message content")
        }
        defer {
            amqp_destroy_message(&message)
            amqp_maybe_release_buffers(state)
        }
        let body: [UInt8] =
            message.body.len == 0
            ? [] : Array(UnsafeRawBufferPointer(start: message.body.bytes, count: message.body.len))
        return (body, MessageProperties(decoding: message.properties))
    }

    /// Answers a `channel.close` / `connection.close` from the broker.
    func replyCloseOk(isConnection: Bool) {
        if isConnection {
            var ok = amqp_connection_close_ok_t()
            _ = amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok)
        } else {
            var ok = amqp_channel_close_ok_t()
            _ = amqp_send_method(state, Self.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok)
        }
    }

    /// Says goodbye politely (`connection.close`, which closes its channel too), waiting at most `timeout` for the
    /// broker's `close-ok` (errors ignored: we are leaving anyway). ``abandon()`` then frees everything.
    func sendClose(timeout: Duration) {
        guard isOpen else { return }
        var limit = Self.makeTimeval(timeout)
        _ = amqp_set_rpc_timeout(state, &limit)
        _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
    }

    /// `duration` as a `timeval` (at least one millisecond: zero would mean "no timeout" to rabbitmq-c).
    static func makeTimeval(_ duration: Duration) -> timeval {
        let (seconds, attoseconds) = max(duration, .milliseconds(1)).components
        return timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    /// Drops a broken connection without a handshake: closes the socket and frees the library state.
    func abandon() {
        guard isOpen else { return }
        isOpen = false
        amqp_destroy_connection(state)
    }

    // MARK: - Encoding into scratch memory

    private var emptyTable: amqp_table_t { amqp_table_t(num_entries: 0, entries: nil) }

    private func withScratch(_ body: () -> Void) {
        defer { recycle_amqp_pool(scratch) }
        body()
    }

    /// Copies a string into scratch memory (valid until the scratch pool is recycled).
    private func scratchBytes(_ string: String) -> amqp_bytes_t {
        var utf8 = Array(string.utf8)
        guard !utf8.isEmpty, let memory = amqp_pool_alloc(scratch, utf8.count) else {
            return amqp_bytes_t(len: 0, bytes: nil)
        }
        utf8.withUnsafeMutableBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return amqp_bytes_t(len: utf8.count, bytes: memory)
    }

    /// A table in scratch memory; values are strings, booleans or nested tables.
    private func scratchTable(_ entries: [(String, FieldValue)]) -> amqp_table_t {
        guard !entries.isEmpty,
            let memory = amqp_pool_alloc(scratch, MemoryLayout<amqp_table_entry_t>.stride * entries.count)
        else { return emptyTable }
        let table = memory.bindMemory(to: amqp_table_entry_t.self, capacity: entries.count)
        for (index, (key, value)) in entries.enumerated() {
            var field = amqp_field_value_t()
            switch value {
            case .string(let string):
                field.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                field.value.bytes = scratchBytes(string)
            case .bool(let bool):
                field.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
                field.value.boolean = bool ? 1 : 0
            case .table(let nested):
                field.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
                field.value.table = scratchTable(nested)
            }
            (table + index).initialize(to: amqp_table_entry_t(key: scratchBytes(key), value: field))
        }
        return amqp_table_t(num_entries: Int32(entries.count), entries: table)
    }

    private enum FieldValue {
        case string(String)
        case bool(Bool)
        case table([(String, FieldValue)])
    }

    private func withClientProperties<T>(connectionName: String, _ body: (UnsafePointer<amqp_table_t>) -> T) -> T {
        var entries: [(String, FieldValue)] = [
            (
                "capabilities",
                .table([
                    ("consumer_cancel_notify", .bool(true)), ("publisher_confirms", .bool(true)),
                    ("basic.nack", .bool(true)), ("connection.blocked", .bool(true)),
                ])
            ),
            ("product", .string("swift-user-events Messaging (rabbitmq-c)")),
        ]
        if !connectionName.isEmpty { entries.append(("connection_name", .string(connectionName))) }
        defer { recycle_amqp_pool(scratch) }
        var table = scratchTable(entries)
        return body(&table)
    }

    private func encode(_ properties: MessageProperties) -> amqp_basic_properties_t {
        var encoded = amqp_basic_properties_t()
        var flags = UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
        encoded.delivery_mode = properties.persistent ? 2 : 1
        if let value = properties.contentType {
            encoded.content_type = scratchBytes(value)
            flags |= UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG)
        }
        if let value = properties.messageID {
            encoded.message_id = scratchBytes(value)
            flags |= UInt32(AMQP_BASIC_MESSAGE_ID_FLAG)
        }
        if let value = properties.type {
            encoded.type = scratchBytes(value)
            flags |= UInt32(AMQP_BASIC_TYPE_FLAG)
        }
        if let value = properties.appID {
            encoded.app_id = scratchBytes(value)
            flags |= UInt32(AMQP_BASIC_APP_ID_FLAG)
        }
        if let value = properties.timestamp {
            encoded.timestamp = value
            flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG)
        }
        if !properties.headers.isEmpty {
            let sorted = properties.headers.sorted { $0.key < $1.key }
            encoded.headers = scratchTable(sorted.map { ($0.key, FieldValue.string($0.value)) })
            flags |= UInt32(AMQP_BASIC_HEADERS_FLAG)
        }
        encoded._flags = flags
        return encoded
    }
}

@available(*, unavailable)
extension AMQPConnection: Sendable {}

/// A method frame decoded out of rabbitmq-c's buffers; deliveries and returns still need their content read.
private enum ReceivedMethod {
    case deliver(deliveryTag: UInt64, redelivered: Bool)
    case returned(routingKey: String, replyCode: UInt16, replyText: String)
    case frame(IncomingFrame)

    init(_ frame: amqp_frame_t) {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else {
            self = .frame(.other("frame type \(frame.frame_type) outside a message"))
            return
        }
        let method = frame.payload.method
        switch method.id {
        case AMQP_BASIC_DELIVER_METHOD:
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            self = .deliver(deliveryTag: deliver.delivery_tag, redelivered: deliver.redelivered != 0)
        case AMQP_BASIC_ACK_METHOD:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            self = .frame(.ack(deliveryTag: ack.delivery_tag, multiple: ack.multiple != 0))
        case AMQP_BASIC_NACK_METHOD:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            self = .frame(.nack(deliveryTag: nack.delivery_tag, multiple: nack.multiple != 0))
        case AMQP_BASIC_RETURN_METHOD:
            let returned = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            self = .returned(
                routingKey: String(amqpBytes: returned.routing_key), replyCode: returned.reply_code,
                replyText: String(amqpBytes: returned.reply_text))
        case AMQP_BASIC_CANCEL_METHOD:
            self = .frame(.cancelledByBroker)
        case AMQP_BASIC_CANCEL_OK_METHOD:
            self = .frame(.cancelOk)
        case AMQP_CHANNEL_CLOSE_METHOD, AMQP_CONNECTION_CLOSE_METHOD:
            self = .frame(.close(BrokerClose(method: method)))
        case AMQP_CONNECTION_BLOCKED_METHOD:
            let blocked = method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            self = .frame(.blocked(reason: String(amqpBytes: blocked.reason)))
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            self = .frame(.unblocked)
        default:
            self = .frame(.other("method 0x\(String(method.id, radix: 16))"))
        }
    }
}

extension MessageProperties {
    /// Decodes received properties; absent fields stay `nil`, non-string header values are rendered as strings.
    init(decoding properties: amqp_basic_properties_t) {
        let flags = properties._flags
        func has(_ flag: Int32) -> Bool { flags & UInt32(flag) != 0 }
        self.init(
            contentType: has(AMQP_BASIC_CONTENT_TYPE_FLAG) ? String(amqpBytes: properties.content_type) : nil,
            messageID: has(AMQP_BASIC_MESSAGE_ID_FLAG) ? String(amqpBytes: properties.message_id) : nil,
            type: has(AMQP_BASIC_TYPE_FLAG) ? String(amqpBytes: properties.type) : nil,
            timestamp: has(AMQP_BASIC_TIMESTAMP_FLAG) ? properties.timestamp : nil,
            appID: has(AMQP_BASIC_APP_ID_FLAG) ? String(amqpBytes: properties.app_id) : nil,
            persistent: has(AMQP_BASIC_DELIVERY_MODE_FLAG) && properties.delivery_mode == 2,
            headers: has(AMQP_BASIC_HEADERS_FLAG) ? Self.decode(properties.headers) : [:])
    }

    private static func decode(_ table: amqp_table_t) -> [String: String] {
        var headers: [String: String] = [:]
        guard table.num_entries > 0, let entries = table.entries else { return headers }
        for index in 0..<Int(table.num_entries) {
            let entry = entries[index]
            if let value = render(entry.value) { headers[String(amqpBytes: entry.key)] = value }
        }
        return headers
    }

    private static func render(_ field: amqp_field_value_t) -> String? {
        switch amqp_field_value_kind_t(rawValue: UInt32(field.kind)) {
        case AMQP_FIELD_KIND_UTF8, AMQP_FIELD_KIND_BYTES: String(amqpBytes: field.value.bytes)
        case AMQP_FIELD_KIND_BOOLEAN: field.value.boolean != 0 ? "true" : "false"
        case AMQP_FIELD_KIND_I8: String(field.value.i8)
        case AMQP_FIELD_KIND_U8: String(field.value.u8)
        case AMQP_FIELD_KIND_I16: String(field.value.i16)
        case AMQP_FIELD_KIND_U16: String(field.value.u16)
        case AMQP_FIELD_KIND_I32: String(field.value.i32)
        case AMQP_FIELD_KIND_U32: String(field.value.u32)
        case AMQP_FIELD_KIND_I64: String(field.value.i64)
        case AMQP_FIELD_KIND_U64, AMQP_FIELD_KIND_TIMESTAMP: String(field.value.u64)
        case AMQP_FIELD_KIND_F32: String(field.value.f32)
        case AMQP_FIELD_KIND_F64: String(field.value.f64)
        default: nil  // tables, arrays, decimals and void have no faithful string form here
        }
    }
}
