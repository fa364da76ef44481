#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>

// Swift cannot call C variadic functions; amqp_login_with_properties takes the
// SASL credentials as varargs, so this fixed-arity wrapper exposes PLAIN login.
static inline amqp_rpc_reply_t swift_amqp_login_plain(
    amqp_connection_state_t state, char const *vhost, int channel_max, int frame_max, int heartbeat,
    amqp_table_t const *properties, char const *user, char const *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}
