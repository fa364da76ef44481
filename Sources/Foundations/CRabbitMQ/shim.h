#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <openssl/ssl.h>

// Swift cannot call C variadic functions; amqp_login_with_properties takes the
// SASL credentials as varargs, so this fixed-arity wrapper exposes PLAIN login.
static inline amqp_rpc_reply_t swift_amqp_login_plain(
    amqp_connection_state_t state, char const *vhost, int channel_max, int frame_max, int heartbeat,
    amqp_table_t const *properties, char const *user, char const *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

// rabbitmq-c 0.11 creates its TLS context with an empty trust store: without a CA file every peer fails
// verification. This loads OpenSSL's defaults (the system CAs, or SSL_CERT_FILE / SSL_CERT_DIR) into it.
// Returns 1 on success.
static inline int swift_amqp_ssl_socket_use_default_ca(amqp_socket_t *socket) {
    SSL_CTX *context = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    return context != NULL && SSL_CTX_set_default_verify_paths(context) == 1;
}
