// placeholder so the library links before its sources land
int trlc_ir_placeholder;
