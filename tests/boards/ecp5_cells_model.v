// Behavioural models of the three ECP5 cells a small Yosys-mapped block RAM design uses, for
// test_output_registers.py. Yosys ships blackboxes only for DP16KD. These follow Lattice's
// documented semantics (TN1264, ECP5 memory usage) as far as Yosys's mapping uses them:
//   DP16KD: 18-bit true dual port (byte write enables on AD1..AD0) or a 36-bit pseudo dual port
//   (DATA_WIDTH_A = DATA_WIDTH_B = 36: writes on A with byte enables on ADA3..ADA0, reads on B,
//   the word {DOB, DOA}); a read port loads its output latch on a clock with CE; REGMODE OUTREG
//   adds the output register, loaded on each clock with OCE (in 36-bit mode both halves follow
//   port B's clock). Chip selects, resets and other widths are outside the model: $fatal.
//   TRELLIS_FF: a rising-edge register, CE used when CEMUX is "CE", synchronous LSR to REGSET.
//   LUT4: Z = INIT[{D, C, B, A}].
`default_nettype none

module LUT4 #(parameter [15:0] INIT = 16'h0000) (input wire A, B, C, D, output wire Z);
    assign Z = INIT[{D, C, B, A}];
endmodule

module TRELLIS_FF #(
    parameter GSR = "ENABLED", CEMUX = "1", CLKMUX = "CLK", LSRMUX = "LSR", REGSET = "RESET",
    parameter SRMODE = "LSR_OVER_CE"
) (input wire CLK, input wire LSR, input wire CE, input wire DI, input wire M, output reg Q);
    initial Q = (REGSET == "SET");
    initial if (CLKMUX != "CLK" || SRMODE != "LSR_OVER_CE") $fatal(1, "TRELLIS_FF model: CLKMUX %s SRMODE %s", CLKMUX, SRMODE);
    always @(posedge CLK)
        if (LSRMUX == "LSR" && LSR === 1'b1) Q <= (REGSET == "SET");
        else if (CEMUX != "CE" || CE === 1'b1) Q <= DI;
endmodule

module DP16KD #(
    parameter DATA_WIDTH_A = 18, DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC", ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000", CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL", WRITEMODE_B = "NORMAL",
    parameter CLKAMUX = "CLKA", CLKBMUX = "CLKB",
    parameter GSR = "ENABLED", INIT_DATA = "STATIC",
    parameter WID = 0,
    parameter [319:0] INITVAL_00 = 320'h0, INITVAL_01 = 320'h0, INITVAL_02 = 320'h0, INITVAL_03 = 320'h0,
    parameter [319:0] INITVAL_04 = 320'h0, INITVAL_05 = 320'h0, INITVAL_06 = 320'h0, INITVAL_07 = 320'h0,
    parameter [319:0] INITVAL_08 = 320'h0, INITVAL_09 = 320'h0, INITVAL_0A = 320'h0, INITVAL_0B = 320'h0,
    parameter [319:0] INITVAL_0C = 320'h0, INITVAL_0D = 320'h0, INITVAL_0E = 320'h0, INITVAL_0F = 320'h0,
    parameter [319:0] INITVAL_10 = 320'h0, INITVAL_11 = 320'h0, INITVAL_12 = 320'h0, INITVAL_13 = 320'h0,
    parameter [319:0] INITVAL_14 = 320'h0, INITVAL_15 = 320'h0, INITVAL_16 = 320'h0, INITVAL_17 = 320'h0,
    parameter [319:0] INITVAL_18 = 320'h0, INITVAL_19 = 320'h0, INITVAL_1A = 320'h0, INITVAL_1B = 320'h0,
    parameter [319:0] INITVAL_1C = 320'h0, INITVAL_1D = 320'h0, INITVAL_1E = 320'h0, INITVAL_1F = 320'h0,
    parameter [319:0] INITVAL_20 = 320'h0, INITVAL_21 = 320'h0, INITVAL_22 = 320'h0, INITVAL_23 = 320'h0,
    parameter [319:0] INITVAL_24 = 320'h0, INITVAL_25 = 320'h0, INITVAL_26 = 320'h0, INITVAL_27 = 320'h0,
    parameter [319:0] INITVAL_28 = 320'h0, INITVAL_29 = 320'h0, INITVAL_2A = 320'h0, INITVAL_2B = 320'h0,
    parameter [319:0] INITVAL_2C = 320'h0, INITVAL_2D = 320'h0, INITVAL_2E = 320'h0, INITVAL_2F = 320'h0,
    parameter [319:0] INITVAL_30 = 320'h0, INITVAL_31 = 320'h0, INITVAL_32 = 320'h0, INITVAL_33 = 320'h0,
    parameter [319:0] INITVAL_34 = 320'h0, INITVAL_35 = 320'h0, INITVAL_36 = 320'h0, INITVAL_37 = 320'h0,
    parameter [319:0] INITVAL_38 = 320'h0, INITVAL_39 = 320'h0, INITVAL_3A = 320'h0, INITVAL_3B = 320'h0,
    parameter [319:0] INITVAL_3C = 320'h0, INITVAL_3D = 320'h0, INITVAL_3E = 320'h0, INITVAL_3F = 320'h0
) (
    input wire DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input wire ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input wire CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output wire DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input wire DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input wire ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input wire CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output wire DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    localparam WIDE = DATA_WIDTH_A == 36;
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    reg [35:0] mem [0:1023];  // 18-bit mode: words 0..1023 in bits 17..0; 36-bit mode: words 0..511
    reg [17:0] lat_a = 0, lat_b = 0, out_a = 0, out_b = 0;
    integer i;
    initial begin
        for (i = 0; i < 1024; i = i + 1) mem[i] = 0;
        if (!((DATA_WIDTH_A == 18 && DATA_WIDTH_B == 18) || (DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36)))
            $fatal(1, "DP16KD model: widths %0d/%0d", DATA_WIDTH_A, DATA_WIDTH_B);
        if (CLKAMUX != "CLKA" || CLKBMUX != "CLKB" || CSDECODE_A != "0b000" || CSDECODE_B != "0b000")
            $fatal(1, "DP16KD model: clock inversion or chip select decode");
    end
    always @(posedge CLKA) begin
        if (RSTA === 1'b1 || {CSA2, CSA1, CSA0} !== 3'b000) $fatal(1, "DP16KD model: RSTA or CSA used");
        if (CEA) begin
            if (WIDE) begin
                if (WEA) for (i = 0; i < 4; i = i + 1)
                    if (ada[i]) mem[ada[13:5]][9 * i +: 9] <= {dib, dia} >> (9 * i);
            end else begin
                if (!WEA) lat_a <= mem[ada[13:4]][17:0];
                else for (i = 0; i < 2; i = i + 1)
                    if (ada[i]) mem[ada[13:4]][9 * i +: 9] <= dia >> (9 * i);
            end
        end
        if (!WIDE && OCEA) out_a <= lat_a;
    end
    always @(posedge CLKB) begin
        if (RSTB === 1'b1 || {CSB2, CSB1, CSB0} !== 3'b000) $fatal(1, "DP16KD model: RSTB or CSB used");
        if (CEB) begin
            if (WIDE) {lat_b, lat_a} <= mem[adb[13:5]];
            else if (!WEB) lat_b <= mem[adb[13:4]][17:0];
            else for (i = 0; i < 2; i = i + 1)
                if (adb[i]) mem[adb[13:4]][9 * i +: 9] <= dib >> (9 * i);
        end
        if (WIDE && OCEA) out_a <= lat_a;
        if (OCEB) out_b <= lat_b;
    end
    wire [17:0] doa = REGMODE_A == "OUTREG" ? out_a : lat_a;
    wire [17:0] dob = REGMODE_B == "OUTREG" ? out_b : lat_b;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule

`default_nettype wire
