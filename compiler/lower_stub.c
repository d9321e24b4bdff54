// placeholder so the library links before its sources land
int trlc_lower_placeholder;
