empty = torch.zeros(1, 1, 64, 64)
one_pixel = empty.clone()
one_pixel[0, 0, 30, 30] = 1
lesion = empty.clone()
lesion[0, 0, 20:40, 20:40] = 1
for name, pred, truth in (("(a) empty truth, empty prediction", empty, empty),
                          ("(b) empty truth, one predicted pixel", one_pixel, empty),
                          ("(c) a lesion, empty prediction", empty, lesion)):
    m = segmentation_metrics(pred, truth)
    print(f"{name:<38}: Dice {m['dice'][0]:.2f}, IoU {m['iou'][0]:.2f}, HD95 {m['hd95'][0]:.1f} px")
