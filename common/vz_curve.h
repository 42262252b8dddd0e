/*  vz_curve - CURVE certificates, ZAP authentication and secured sockets
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Key layout (made by the supervisor or `vzctl keys gen DIR`):
 *    DIR/public/<name>.key          public certificate, metadata name=<name>; 0644
 *    DIR/secret/<name>.key_secret   secret certificate; 0600, directory 0700
 *  Only directories keygen creates get those modes (DIR itself 0755); an
 *  existing directory keeps its own.
 *  A daemon gets the path of its own certificate (DIR/secret/<name>.key;
 *  zcert_load reads the _secret file beside it), or the certificate's text
 *  through an inherited fd (VZ_CURVE_SECRET_FD, vz_curve_cert_read_fd), the
 *  allow directory (DIR/public) if it accepts connections, and the
 *  broker's public key. Under the supervisor as root each secret file is
 *  owned by its service's uid, 0400 (docs/operations/isolation.md).
 *
 *  There is deliberately no way to make a socket without CURVE here.
 *  Identity: the accepting side reads the "name" metadata the ZAP handler
 *  attached from the allowed certificate (zframe_meta), never anything the
 *  peer says about itself.
 */
#ifndef VZ_CURVE_H
#define VZ_CURVE_H

#include <czmq.h>

typedef struct vz_auth_t vz_auth_t;

//  Load a certificate that must hold a secret key and a "name" metadata.
//  Returns NULL with a reason in err when the file is missing, unreadable,
//  public-only or nameless. Caller owns the result.
zcert_t *vz_curve_cert_load(const char *path, char *err, size_t errlen);

//  The same for the text of a secret certificate read from fd up to end of
//  file (a pipe the supervisor filled and closed). fd is closed here, so
//  the secret is read once. NULL with a reason in err. Caller owns the result.
zcert_t *vz_curve_cert_read_fd(int fd, char *err, size_t errlen);

//  Create (or keep, when it exists and is valid) the key pair of `name`
//  under dir with the layout above and the stated modes. 0 or -errno.
int vz_curve_keygen(const char *dir, const char *name);

//  Resolve a server key given either as 40 Z85 characters or as the path of
//  a public certificate. Writes 41 bytes to out. 0, or -EINVAL/-ENOENT.
int vz_curve_server_key(const char *text_or_path, char out[41]);

//  Start ZAP for this process: accept CURVE clients whose public certificate
//  is in allow_dir. The directory is re-read when it changes (zcertstore's
//  disk loader), so adding or removing a file allows or revokes a key
//  without a restart. One per process. NULL on failure.
vz_auth_t *vz_auth_new(const char *allow_dir);
void vz_auth_destroy(vz_auth_t **self_p);

//  A CURVE server socket of `type` bound to endpoint (ZAP domain "vizmesh").
//  endpoint may use port * or 0; vz_curve_bound_port tells the port. NULL on
//  failure (errno set).
zsock_t *vz_curve_server(int type, const char *endpoint, zcert_t *cert);

//  A CURVE client socket of `type` connected to every endpoint in the
//  comma-separated list, authenticating the server by server_key (Z85).
zsock_t *vz_curve_client(int type, const char *endpoints, zcert_t *cert, const char *server_key);

//  The same socket not yet connected, for a caller that sets options per
//  connection (vz_client's routing id per broker). NULL on failure (errno).
zsock_t *vz_curve_client_socket(int type, zcert_t *cert, const char *server_key);

//  Port bound by the last bind of a server socket, or -1.
int vz_curve_bound_port(zsock_t *sock);

//  Identity of the peer that sent frame: the "name" metadata of its
//  allowed certificate, copied into out. -ENOENT when absent.
int vz_curve_peer_name(zframe_t *frame, char *out, size_t n);

#endif
