// ir_internal.h — helpers shared by the IR builder files (ir.c, ir_model.c) and the passes that
// rewrite graphs (recompute.c, autocast.c); not a public header.
#ifndef TRLC_IR_INTERNAL_H
#define TRLC_IR_INTERNAL_H
#include "ir.h"

static inline const IrNode *ir_nd(const IrGraph *g, IrId id) { return &g->nodes[id]; }
static inline bool ir_valid(const IrGraph *g, IrId id) { return id >= 0 && id < g->n; }

// Reports an error at loc (or without a location) and counts it on the graph.
void ir_report(IrGraph *g, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// Shape text for messages, in a small rotating set of thread-local buffers.
const char *ir_shp(const IrGraph *g, IrId id);
const char *ir_shs(const IrShape *s);
// The constant factors of all dims multiply without overflow.
bool ir_const_numel_ok(const IrShape *s);
// A valid shape (rank, dims, size), else reported as `what: ...`.
bool ir_shape_ok(IrGraph *g, const IrShape *s, Loc loc, const char *what);
// Negative axes count from the end; out of range is reported.
bool ir_norm_axis(IrGraph *g, int axis, int rank, int *out, const char *what, Loc loc);
// Replaces g's nodes by nodes[0..m) (malloc'd; g takes them, shrunk to m) that a rewriting pass
// built, with *map giving each old node's new id: outputs, the loss and the renumbering follow
// (ir_renumbered keeps answering for the ids of before the first renumbering; g
// may take *map, which is then NULL).
void ir_install_nodes(IrGraph *g, IrNode *nodes, int m, IrId **map);
// A node of x's dtype and shape.
IrId ir_unary_node(IrGraph *g, IrOp op, IrId x, const IrAttrs *a, Loc loc);

#endif
