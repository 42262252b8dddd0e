/*  vz_ports - the default port of every daemon, in one table
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every daemon's defaults (VZ_ADMIN_PORT, VZ_GATEWAY_PORT, VZ_BROKER_BIND,
 *  VZ_REDIS_URL, ...) and the supervisor's defaults come from here;
 *  configs/mesh.cfg, compose/ and k8s/ write the same numbers
 *  (docs/configuration.md, "Default ports", is the table for people).
 *
 *  Scheme: public ports are the well-known ones (Redis on 6380 so a system
 *  Redis on 6379 does not collide). Admin HTTP ports are 91x0: the broker
 *  9100 and the gateway 9101, then one decade per service, so the
 *  supervisor's "replica i gets admin_port + i" has room for ten replicas.
 *  Services without a public port (workers reach the world through the
 *  broker, webhooks through the gateway) have only an admin port.
 */
#ifndef VZ_PORTS_H
#define VZ_PORTS_H

//  Public ports.
#define VZ_PORT_REDIS 6380   //  redis-server run by the supervisor
#define VZ_PORT_BROKER 5555  //  the broker's CURVE ROUTER
#define VZ_PORT_GATEWAY 8080 //  the gateway's public HTTP

//  Admin HTTP ports (/healthz, /readyz, /metrics).
#define VZ_PORT_ADMIN_BROKER 9100
#define VZ_PORT_ADMIN_GATEWAY 9101
#define VZ_PORT_ADMIN_ECHO 9110
#define VZ_PORT_ADMIN_AUTH 9120
#define VZ_PORT_ADMIN_RATELIMIT 9130
#define VZ_PORT_ADMIN_BILLING 9140
#define VZ_PORT_ADMIN_NOTIFIER 9150
#define VZ_PORT_ADMIN_GITHUB 9160
#define VZ_PORT_ADMIN_REPORTER 9170
#define VZ_PORT_ADMIN_TELEMETRY 9180

//  A port as a string literal, for the text defaults of config tables:
//  "tcp://127.0.0.1:" VZ_PORT_TEXT(VZ_PORT_BROKER).
#define VZ_PORT_TEXT(port) VZ_PORT_TEXT_(port)
#define VZ_PORT_TEXT_(port) #port

//  Default admin port of the named service, or -ENOENT for a name not in
//  the table. For the supervisor, whose mesh file may leave it out.
int vz_ports_admin(const char *service);

//  A loopback TCP port that is free now, for "auto" ports (the supervisor)
//  and tests. Drawn at random below the kernel's ephemeral range
//  (net.ipv4.ip_local_port_range, read from /proc; 10000 up to its low end):
//  a port the kernel hands out is also the source port of any outbound
//  connection, so one picked there can be taken by a client socket before
//  the daemon binds it. Falls back to a kernel-chosen port when none of 64
//  draws is free. The port is not held: a caller binds it soon after.
//  Returns the port, or -errno when no socket can be made.
int vz_ports_free(void);

#endif
